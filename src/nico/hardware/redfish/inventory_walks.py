"""One `UpdateService/FirmwareInventory` walk shared by the trays behind one BMC.

A BMC serving many systems lists every system's firmware members in one collection, and
a tray's read needs the walk (collection plus every member) to find its own members. Done
per tray, reading N trays on one BMC cost N walks of N trays' members; here the reads of
one BMC share a walk for `WALK_TTL` seconds, so a sync batch, a step's reads or an
upgrade's reads cost one walk plus a few requests per tray.

A read never reports a version older than the read: a caller whose walk started before
it was asked (`Walk.started < asked`) GETs its own members again (see the backend).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

# How long a walk's member list is shared: long enough for a batch, a step's trays or
# a pass over one BMC, short enough that a member added on the BMC is seen soon.
WALK_TTL = 5.0

Members = list[tuple[str, dict[str, Any]]]  # (member URI, member body), in collection order


@dataclass(frozen=True)
class Walk:
    """A walk's members and when its first request was about to go out (monotonic)."""

    started: float
    members: Members


class InventoryWalks:
    """The latest walk per BMC key, joined while running and reused within the TTL."""

    def __init__(self, ttl: float = WALK_TTL) -> None:
        self._ttl = ttl
        self._walks: OrderedDict[Hashable, tuple[float, asyncio.Task[Members]]] = OrderedDict()

    async def walk(self, key: Hashable, fetch: Callable[[], Awaitable[Members]]) -> Walk:
        """The BMC's current walk, started by this call when none is fresh."""
        now = time.monotonic()
        self._expire(now)
        entry = self._walks.get(key)
        if entry is None:
            entry = (now, asyncio.ensure_future(fetch()))
            self._walks[key] = entry
            entry[1].add_done_callback(lambda task: self._forget_failed(key, task))
        started, task = entry
        # Shielded: a caller that is cancelled does not cancel the walk others wait for.
        return Walk(started, await asyncio.shield(task))

    def _forget_failed(self, key: Hashable, task: asyncio.Task[Members]) -> None:
        """A failed walk is not shared with later reads (they try again)."""
        if task.cancelled() or task.exception() is not None:
            entry = self._walks.get(key)
            if entry is not None and entry[1] is task:
                del self._walks[key]

    def _expire(self, now: float) -> None:
        """Drop walks older than the TTL (oldest first: entries are kept in start order)."""
        while self._walks:
            key, (started, _) = next(iter(self._walks.items()))
            if now - started < self._ttl:
                return
            del self._walks[key]
