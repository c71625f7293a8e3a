"""One request cap per BMC for the whole process (NICO_BMC_CONCURRENCY), commands first.

BMCs fall over when many collectors hit them at once, so every client that talks to
the same `host:port` — power, firmware, polls, whichever task — shares one cap. When the
cap is full, a request made for a command (`commanding()`: a power or firmware command
and the reads it needs) gets the next free slot before any waiting status read: with 35
trays behind one BMC, the polls of the trays already switched used to hold the slots
while the others' commands queued behind them, so the last tray started its transition
(and the bulk request finished) a second or more later. Reads are not starved: commands
are one per tray and action.

asyncio primitives belong to one event loop, so the registry is kept per loop (the
worker runs one loop; tests may run several).
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager


class _Command:
    """One command in progress: whether it has had a slot yet."""

    started = False


_command: contextvars.ContextVar[_Command | None] = contextvars.ContextVar(
    "nico_redfish_command", default=None
)


@contextmanager
def commanding() -> Iterator[None]:
    """Requests made inside are one command's: they go before waiting status reads, and
    once the command has had a slot its next requests (the reset after the read that
    found its target) go before other commands' first ones, so each tray's command
    reaches the BMC as early as the cap allows."""
    token = _command.set(_Command())
    try:
        yield
    finally:
        _command.reset(token)


# Waiting classes, served in this order.
_COMMAND_UNDER_WAY, _COMMAND, _READ = 0, 1, 2


def _rank(command: _Command | None) -> int:
    if command is None:
        return _READ
    return _COMMAND_UNDER_WAY if command.started else _COMMAND


class BmcLimiter:
    """At most `limit` requests on the wire to one BMC; commands wait ahead of reads."""

    def __init__(self, limit: int) -> None:
        self._free = max(1, limit)
        self._queues: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque(), deque())

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        command = _command.get()
        await self._acquire(_rank(command))
        if command is not None:
            command.started = True
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._free > 0 and not any(self._queues):
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues[rank]
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        for queue in self._queues:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes straight to it
                    return
        self._free += 1


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BmcLimiter]] = (
    weakref.WeakKeyDictionary()
)


def bmc_limiter(bmc: str, limit: int) -> BmcLimiter:
    """The shared limiter for `bmc` (`host:port`); the first caller's limit wins."""
    loop = asyncio.get_running_loop()
    per_loop = _limiters.setdefault(loop, {})
    limiter = per_loop.get(bmc)
    if limiter is None:
        limiter = per_loop[bmc] = BmcLimiter(limit)
    return limiter
