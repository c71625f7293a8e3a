"""Telling infrastructure failures from hardware failures, and waiting them out.

Inside an activity, every database read or write and every backend call runs through
`retrying()`: an error of nico's own services (`classify`) is waited out with the
backoff of `nico.engine.retries.INFRA` while the activity keeps heartbeating, and the
call is made again. It never reaches Temporal as a failed hardware attempt. When the
outage outlasts what the activity may wait (the budget, or the attempt's own deadline),
`InfrastructureUnavailable` carries a text naming only the service; the workflow then
waits on the same budget and calls again without spending a hardware attempt.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from temporalio.service import RPCError, RPCStatusCode

from nico.engine.retries import DATABASE, INFRA, TEMPORAL, InfraBudget, infra_message
from nico.hardware.interface import HardwareError
from nico.rules.durations import format_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

_TEMPORAL_DOWN = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
    }
)
_DATABASE_DOWN = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # pool exhausted
    sa_exc.DisconnectionError,
)


def classify(exc: BaseException) -> str | None:
    """`DATABASE` or `TEMPORAL` when `exc` (or what caused it) is nico's own service not
    answering; None for anything else (a hardware answer, a bug). A backend's
    `HardwareError` is always the hardware's, even when it wraps a network error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, HardwareError):
            return None
        if isinstance(current, RPCError):
            return TEMPORAL if current.status in _TEMPORAL_DOWN else None
        if isinstance(current, _DATABASE_DOWN):
            return DATABASE
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return DATABASE
        if type(current).__module__.split(".")[0] == "asyncpg" and _asyncpg_down(current):
            return DATABASE
        # Raw socket errors escape the database drivers while they connect (asyncpg's
        # "Connect call failed"); backends wrap theirs in HardwareError.
        # (A bare TimeoutError is a deadline, not a socket: it is not counted.)
        if isinstance(current, OSError) and not isinstance(
            current, TimeoutError | FileNotFoundError | PermissionError
        ):
            return DATABASE
        current = current.__cause__ or current.__context__
    return None


def _asyncpg_down(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names
        & {
            "PostgresConnectionError",
            "InterfaceError",
            "CannotConnectNowError",
            "ConnectionDoesNotExistError",
            "TooManyConnectionsError",
            "AdminShutdownError",
            "CrashShutdownError",
        }
    )


class InfrastructureUnavailable(Exception):
    """nico's database or Temporal stayed unavailable for as long as this call may wait.
    The text names only the service (safe for a task message)."""

    def __init__(self, kind: str, waited: float) -> None:
        super().__init__(infra_message(kind, format_seconds(max(round(waited), 1))))
        self.kind = kind
        self.waited = waited


@dataclass
class _Outage:
    """The infrastructure outage the current activity is waiting out, if any."""

    kind: str | None = None
    since: float = 0.0


_outage: contextvars.ContextVar[_Outage | None] = contextvars.ContextVar(
    "nico_infra_outage", default=None
)


@contextmanager
def watching() -> Iterator[_Outage]:
    """Track outages for one activity attempt (shared with tasks it spawns), so a deadline
    that cuts an infrastructure wait is reported as the outage, not as the hardware's."""
    outage = _Outage()
    token = _outage.set(outage)
    try:
        yield outage
    finally:
        _outage.reset(token)


def waiting_out() -> InfrastructureUnavailable | None:
    """The outage being waited out right now in this attempt, as the error to raise."""
    outage = _outage.get()
    if outage is None or outage.kind is None:
        return None
    return InfrastructureUnavailable(outage.kind, time.monotonic() - outage.since)


async def retrying(
    op: Callable[[], Awaitable[T]],
    *,
    budget: InfraBudget = INFRA,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`op()`, made again after each infrastructure failure until it answers or `budget`
    is spent (then `InfrastructureUnavailable`). Anything else propagates unchanged.
    One WARNING line per outage and per recovery, never a traceback."""
    outage = _outage.get() or _Outage()
    failures = 0
    first = 0.0
    while True:
        try:
            result = await op()
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            now = clock()
            if failures == 0:
                first = now
                if outage.kind is None:
                    outage.kind, outage.since = kind, now
                    log.warning("%s unavailable, waiting (%s)", kind, _short(exc))
            failures += 1
            if now - first >= budget.total:
                raise InfrastructureUnavailable(kind, now - first) from None
            pause = budget.delay(failures, random.random())
            await asyncio.sleep(min(pause, budget.total - (now - first)))
            continue
        if failures:
            log.warning("%s answering again after %.1fs", outage.kind or "service", clock() - first)
            outage.kind = None
        return result


def _short(exc: BaseException) -> str:
    """A log line's worth of the error, without the SQL statement SQLAlchemy appends."""
    text = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {text}"[:300]
