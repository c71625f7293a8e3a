"""Marking the time a caller waits on nico's own database, so a deadline that cuts such a
wait can be told apart from one that cuts a slow BMC.

Why: a database call can stall without failing: SQLite's write lock held by another
writer (busy_timeout, 30 s), a PostgreSQL connection hanging while the server restarts,
a pool with no free connection (pool_timeout), a `Batcher` caller queued behind a batch
that is itself stalled. When a hardware attempt's deadline cuts such a wait no error
says it was the database, and the tray used to fail as if its BMC had not answered.

`Database.session`, `Database.read` and `Batcher.__call__` run their callers' waits
inside `waiting()`. A scope (`scope()`, opened per hardware attempt or poll read by the
engine's `infra.watching`) remembers the wait a cancel cut (`StallScope.take`) and tells
the engine how long the others lasted (`on_wait`). The store only records; what counts
as a stall is the engine's call.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StallScope:
    """Database waits of one scope (and the tasks it spawns). Scopes nest: a wait counts
    in its scope and every enclosing one. Times are the event loop's clock (that of
    `asyncio.Timeout.when()`)."""

    parent: StallScope | None = None
    # Told (began, ended) of each wait of this very scope that ended without a cancel.
    on_wait: Callable[[float, float], None] | None = None
    # The database wait a cancel ended: when it began (the outermost of nested waits
    # cut together) and when it ended; None when the last wait was not cut.
    cut_began: float | None = None
    cut_ended: float | None = None
    # Waits in progress in this scope or a nested one: when each began.
    _open: dict[object, float] = field(default_factory=dict)

    def _chain(self) -> Iterator[StallScope]:
        scope: StallScope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent

    def _began(self, wait: object, now: float) -> None:
        for scope in self._chain():
            # A new wait: a cut seen before it was not where the scope ended.
            scope.cut_began = scope.cut_ended = None
            scope._open[wait] = now

    def _ended(self, wait: object, began: float, now: float, *, cut: bool) -> None:
        for scope in self._chain():
            scope._open.pop(wait, None)
            if cut:
                scope.cut_began = min(scope.cut_began or began, began)
                scope.cut_ended = max(scope.cut_ended or now, now)
        if not cut and self.on_wait is not None:
            self.on_wait(began, now)

    def oldest(self) -> float | None:
        """When the oldest database wait still in progress here began (None: none is)."""
        return min(self._open.values(), default=None)

    def take(self, cut_at: float | None = None) -> tuple[float, float] | None:
        """When the cut wait began and when the cancel was sent to it at `cut_at` (a
        deadline's `when()`; default: when the wait ended), or None when the scope was
        not cut waiting on the database. The time a cancel then takes to get out (a
        rollback queued behind the lock that stalled the call) does not count, and a
        wait that began after the cancel was sent lasted 0 s. Forgotten once read."""
        began, ended = self.cut_began, self.cut_ended
        if began is None or ended is None:
            return None
        self.cut_began = self.cut_ended = None
        end = ended if cut_at is None else min(cut_at, ended)
        return began, max(end, began)


_scope: contextvars.ContextVar[StallScope | None] = contextvars.ContextVar(
    "nico_db_stalls", default=None
)


@contextmanager
def scope(on_wait: Callable[[float, float], None] | None = None) -> Iterator[StallScope]:
    """A scope of database-wait accounting inside the current one (shared with the tasks
    it spawns); `on_wait` is told when each wait of this scope (not of a nested one)
    that ended without a cancel began and ended."""
    current = StallScope(parent=_scope.get(), on_wait=on_wait)
    token = _scope.set(current)
    try:
        yield current
    finally:
        _scope.reset(token)


@contextmanager
def waiting() -> Iterator[None]:
    """The caller waits on nico's database inside this block: a cancel that ends it is
    recorded in the current scope with when the wait began and ended; any other end is
    told to the scope's `on_wait`."""
    current = _scope.get()
    if current is None:
        yield
        return
    loop = asyncio.get_running_loop()
    began = loop.time()
    wait = object()
    current._began(wait, began)
    cut = False
    try:
        yield
    except asyncio.CancelledError:
        cut = True
        raise
    finally:
        current._ended(wait, began, loop.time(), cut=cut)


def detached() -> contextvars.Context:
    """A copy of the current context outside any scope: for work that serves many
    callers (a batch), whose waits are each caller's own, not the first caller's."""
    context = contextvars.copy_context()
    context.run(_scope.set, None)
    return context
