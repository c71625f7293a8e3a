"""Marking the time a caller waits on nico's own database, so a deadline that cuts such a
wait can be told apart from one that cuts a slow BMC.

Why: a database call can stall without failing: SQLite's write lock held by another
writer (busy_timeout, 30 s), a PostgreSQL connection hanging while the server restarts,
a pool with no free connection (pool_timeout), a `Batcher` caller queued behind a batch
that is itself stalled. When a hardware attempt's deadline cuts such a wait no error
says it was the database, and the tray used to fail as if its BMC had not answered.

`Database.session`, `Database.read` and `Batcher.__call__` run their callers' waits
inside `waiting()`. A scope (`scope()`, opened per hardware attempt or poll read by the
engine's `infra.watching`) remembers the wait a cancel cut (`StallScope.take`). The store
only records; what counts as a stall is the engine's call.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class StallScope:
    """Database waits of one scope (and the tasks it spawns). Scopes nest: a cut wait
    counts in its scope and every enclosing one. Times are the event loop's clock (that
    of `asyncio.Timeout.when()`)."""

    parent: StallScope | None = None
    # The database wait a cancel ended: when it began (the outermost of nested waits
    # cut together) and when it ended; None when the last wait was not cut.
    cut_began: float | None = None
    cut_ended: float | None = None

    def _chain(self) -> Iterator[StallScope]:
        scope: StallScope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent

    def _began(self) -> None:
        # A new wait: a cut seen before it was not where the scope ended.
        for scope in self._chain():
            scope.cut_began = scope.cut_ended = None

    def _cut(self, began: float, ended: float) -> None:
        for scope in self._chain():
            scope.cut_began = min(scope.cut_began or began, began)
            scope.cut_ended = max(scope.cut_ended or ended, ended)

    def take(self, cut_at: float | None = None) -> float | None:
        """How long the cut wait had lasted when the cancel was sent at `cut_at` (a
        deadline's `when()`; default: when the wait ended), or None when the scope was
        not cut waiting on the database. The time a cancel then takes to get out (a
        rollback queued behind the lock that stalled the call) does not count, and a
        wait that began after the cancel was sent lasted 0 s. Forgotten once read."""
        began, ended = self.cut_began, self.cut_ended
        if began is None or ended is None:
            return None
        self.cut_began = self.cut_ended = None
        end = ended if cut_at is None else min(cut_at, ended)
        return max(end - began, 0.0)


_scope: contextvars.ContextVar[StallScope | None] = contextvars.ContextVar(
    "nico_db_stalls", default=None
)


@contextmanager
def scope() -> Iterator[StallScope]:
    """A scope of database-wait accounting inside the current one (shared with the tasks
    it spawns)."""
    current = StallScope(parent=_scope.get())
    token = _scope.set(current)
    try:
        yield current
    finally:
        _scope.reset(token)


@contextmanager
def waiting() -> Iterator[None]:
    """The caller waits on nico's database inside this block: a cancel that ends it is
    recorded in the current scope with when the wait began and ended."""
    current = _scope.get()
    if current is None:
        yield
        return
    loop = asyncio.get_running_loop()
    began = loop.time()
    current._began()
    try:
        yield
    except asyncio.CancelledError:
        current._cut(began, loop.time())
        raise


def detached() -> contextvars.Context:
    """A copy of the current context outside any scope: for work that serves many
    callers (a batch), whose waits are each caller's own, not the first caller's."""
    context = contextvars.copy_context()
    context.run(_scope.set, None)
    return context
