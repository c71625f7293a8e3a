"""Telling infrastructure failures from hardware failures, and waiting them out.

Inside an activity, every database read or write and every backend call runs through
`retrying()`: an error of nico's own services (`classify`) is waited out with the
backoff of `nico.engine.retries.INFRA` while the activity keeps heartbeating, and the
call is made again. It never reaches Temporal as a failed hardware attempt. When the
outage outlasts what the activity may wait (the budget, or the attempt's own deadline),
`InfrastructureUnavailable` carries a text naming only the service; the workflow then
waits on the same budget and calls again without spending a hardware attempt.

A database call can also stall without failing (a lock, a pool with no connection, a
server that hangs while it restarts). The store marks the time a caller waits on it
(`nico.store.stalls`); a deadline that cuts such a wait of at least `MIN_STALL` is the
database's outage too (`waiting_out`).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from nico.store import stalls

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a database wait must have lasted when a deadline cut it to be the database's
# stall rather than the hardware's time running out. A healthy statement or commit takes
# milliseconds (tens under load); a wait cut a moment after it began means the attempt
# spent its time elsewhere (a BMC that answered just before its deadline, then a write
# that had no time left), and blaming the database then would retry a slow BMC for the
# 10 minutes of INFRA instead of failing it on its attempts. Half a second is far beyond
# a healthy wait and well inside the shortest hardware attempt (1 s).
MIN_STALL = 0.5

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
class Outage:
    """Time one scope (an activity attempt, a step, one hardware attempt or poll read)
    spent waiting out nico's own services. Scopes nest: a wait counts in its scope and
    every enclosing one, so a step knows how long any of its trays was held up (the
    union of their waits, not their sum) and a single attempt knows whether *it* was
    waiting when its deadline cut it. A scope ends with its attempt, so nothing it saw
    excuses what happens after (an outage flag left set by a cut-off wait used to excuse
    every later hardware timeout of the activity for up to the 10-minute budget)."""

    parent: Outage | None = None
    kind: str | None = None  # the service being waited out now, or last cut off waiting
    since: float = 0.0  # when the current wait began
    waiting: int = 0  # calls in this scope waiting right now
    closed: float = 0.0  # seconds of finished waits
    cut: bool = False  # a wait was cut off by a deadline or cancel (never recovered)
    # The scope's own deadline (a hardware attempt's): a wait that ends before it fires
    # pushes it back by the wait's length, so the hardware still gets its whole time.
    deadline: asyncio.Timeout | None = None
    # The same scope's waits on the database (a stall cut by a deadline shows here).
    database: stalls.StallScope | None = None
    stalls_until: float = 0.0  # end of the last database stall counted (loop time)

    def begin(self, kind: str, now: float) -> None:
        scope: Outage | None = self
        while scope is not None:
            if scope.waiting == 0:
                scope.kind, scope.since = kind, now
            scope.waiting += 1
            scope = scope.parent

    def end(self, now: float, *, cut: bool) -> None:
        scope: Outage | None = self
        while scope is not None:
            scope.waiting -= 1
            if scope.waiting == 0:
                scope.closed += now - scope.since
                # Counted: a database wait around it (a caller waiting on a write that
                # waited the outage out) is not a stall for the same time again.
                scope.stalls_until = max(scope.stalls_until, now)
                scope.cut = cut
                if not cut:
                    scope.kind = None
                    scope._extend(now - scope.since)
            scope = scope.parent

    def _extend(self, waited: float) -> None:
        deadline = self.deadline
        if deadline is None or deadline.expired():
            return
        when = deadline.when()
        if when is not None:
            # RuntimeError: the attempt already ended (a write it spawned recovered).
            with contextlib.suppress(RuntimeError):
                deadline.reschedule(when + waited)

    def db_waited(self, began: float, ended: float) -> None:
        """A database wait of this scope ended with an answer (or an error): one of at
        least MIN_STALL is a stall the scope recovered from, outage time that pushes the
        scope's deadline back, as a recovered outage does. Not while an outage with
        errors is being waited out here: that counts already."""
        if ended - began < MIN_STALL or self.waiting:
            return
        self._extend(self.stalled(began, ended))

    def stalled(self, began: float, ended: float) -> float:
        """A database stall from `began` to `ended` (event loop time): outage time in
        this scope and every enclosing one (no error was seen, so `begin`/`end` never
        counted it). Counted once per scope however many of its trays (or nested waits)
        it held up at the same time: their union, as far as the stalls end in order.
        Returns the seconds it added to this scope."""
        added_here = 0.0
        scope: Outage | None = self
        while scope is not None:
            # An outage this scope is waiting out now counts from its start (`end`).
            until = min(ended, scope.since) if scope.waiting else ended
            added = until - max(began, scope.stalls_until)
            if added > 0:
                scope.closed += added
                scope.stalls_until = ended
                added_here = added if scope is self else added_here
            scope = scope.parent
        return added_here

    def _stalling(self) -> float:
        """Seconds of a database stall in progress in this scope (a wait that has lasted
        MIN_STALL so far) not yet counted."""
        oldest = self.database.oldest() if self.database is not None else None
        if oldest is None:
            return 0.0
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return 0.0
        if now - oldest < MIN_STALL:
            return 0.0
        return max(now - max(oldest, self.stalls_until), 0.0)

    def spent(self, now: float | None = None) -> float:
        """Seconds this scope has waited out outages so far (waits in progress included,
        a database stall in progress too)."""
        now = time.monotonic() if now is None else now
        return self.closed + (now - self.since if self.waiting else self._stalling())


_outage: contextvars.ContextVar[Outage | None] = contextvars.ContextVar(
    "nico_infra_outage", default=None
)


@contextmanager
def watching(deadline: asyncio.Timeout | None = None) -> Iterator[Outage]:
    """A scope of outage accounting inside the current one (shared with the tasks it
    spawns): `waiting_out()` and `spent()` answer for what ran inside it. A `deadline`
    given is the scope's own: each outage waited out inside it, and recovered from,
    pushes it back by as long as the wait took (an attempt that spent 4 of its 5 s
    waiting for the database still gives the BMC 5 s once the database answers)."""
    outage = Outage(parent=_outage.get(), deadline=deadline)
    with stalls.scope(on_wait=outage.db_waited) as database:
        outage.database = database
        token = _outage.set(outage)
        try:
            yield outage
        finally:
            _outage.reset(token)


def detached() -> contextvars.Context:
    """A copy of the current context outside any outage scope (and any database-wait
    scope): for work that serves a whole step (its trays' batched observations), whose
    outages held up none of its trays and must neither extend the step's limit nor
    excuse the attempt that happened to start it."""
    context = stalls.detached()
    context.run(_outage.set, None)
    return context


def waiting_out(deadline: asyncio.Timeout | None = None) -> InfrastructureUnavailable | None:
    """The outage the current scope was waiting out when it was cut (or is waiting out
    now), as the error to raise; None when it was not waiting for nico's own services.
    Asked once, when `deadline` (default: the scope's own) cut the scope: a database call
    that had stalled for at least MIN_STALL when the deadline fired (no error seen) is
    the database's too, and its time counts as the scope's outage time."""
    outage = _outage.get()
    if outage is None:
        return None
    if outage.kind is not None and (outage.waiting or outage.cut):
        return InfrastructureUnavailable(outage.kind, time.monotonic() - outage.since)
    if outage.database is None:
        return None
    deadline = deadline or outage.deadline
    stall = outage.database.take(deadline.when() if deadline is not None else None)
    if stall is None or stall[1] - stall[0] < MIN_STALL:
        return None
    outage.stalled(*stall)
    return InfrastructureUnavailable(DATABASE, stall[1] - stall[0])


async def retrying(
    op: Callable[[], Awaitable[T]],
    *,
    budget: InfraBudget = INFRA,
    clock: Callable[[], float] = time.monotonic,
    component: str = "worker",
) -> T:
    """`op()`, made again after each infrastructure failure until it answers or `budget`
    is spent (then `InfrastructureUnavailable`). Anything else propagates unchanged.
    One WARNING line per outage and one per recovery for the whole `component` in this
    process (`OUTAGES`), never a traceback. The time spent waiting counts in the current
    scope (`watching`)."""
    outage = _outage.get() or Outage()
    failures = 0
    first = 0.0
    answered = False  # the service answered (a result, or an error that is not an outage)
    try:
        while True:
            try:
                result = await op()
            except Exception as exc:
                kind = classify(exc)
                if kind is None:
                    answered = True
                    raise
                now = clock()
                if failures == 0:
                    first = now
                    OUTAGES.down(component, kind, exc, now)
                    outage.begin(kind, now)
                failures += 1
                if now - first >= budget.total:
                    raise InfrastructureUnavailable(kind, now - first) from None
                pause = budget.delay(failures, random.random())
                await asyncio.sleep(min(pause, budget.total - (now - first)))
                continue
            answered = True
            if failures:
                OUTAGES.up(component, clock())
            return result
    finally:
        if failures:
            outage.end(clock(), cut=not answered)


class OutageLog:
    """What a process logs about outages of nico's own services: one WARNING line when a
    component (the worker's activities, the queue sweep, the reconciler) first finds a
    service down, one when it answers that component again; nothing for the hundreds of
    calls that meet the same outage meanwhile, and never a traceback (an outage is not a
    bug of nico's)."""

    def __init__(self) -> None:
        self._down: dict[tuple[str, str], float] = {}

    def down(self, component: str, kind: str, exc: BaseException, now: float) -> None:
        if (component, kind) not in self._down:
            self._down[(component, kind)] = now
            log.warning("%s: %s unavailable, waiting (%s)", component, kind, _short(exc))

    def up(self, component: str, now: float) -> None:
        for key in [k for k in self._down if k[0] == component]:
            since = self._down.pop(key)
            log.warning("%s: %s answering again after %.1fs", component, key[1], now - since)

    def failed(self, component: str, exc: BaseException) -> bool:
        """Log `exc` of one pass of `component` if it is an outage (once per outage);
        False when it is not one (the caller logs it as the bug it is)."""
        kind = classify(exc)
        if kind is None:
            return False
        self.down(component, kind, exc, time.monotonic())
        return True

    def answered(self, component: str) -> None:
        """A pass of `component` went through: an outage it met is over."""
        if self._down:
            self.up(component, time.monotonic())


# The process's outage log: every component of this process reports through it.
OUTAGES = OutageLog()


def _short(exc: BaseException) -> str:
    """A log line's worth of the error, without the SQL statement SQLAlchemy appends."""
    text = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {text}"[:300]
