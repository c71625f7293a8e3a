"""Task statuses written into a statement's text rather than bound.

The list statements filter on task statuses (active, finished, the ones a request asked
for). They come from a closed set, `TaskStatus`, so each can be part of the statement's
text: `status IN ('Pending', 'Running', 'Waiting')`. Bound instead, PostgreSQL's generic
plan (the read pool plans once per connection, `Database.read`) is made without them: it
cannot use a partial index whose predicate names statuses (a rack's Running tasks would
walk the rack's history). And each bound IN list is "expanded" by SQLAlchemy on every
execution (a regular-expression pass over the statement's text, ~0.1 ms of a list
request's ~1 ms of CPU). A value outside the set raises ValueError: nothing else ever
reaches SQL text. (The operation type stays bound: `nico.store.tasks._operation`.)
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, literal_column
from sqlalchemy.orm import InstrumentedAttribute

from nico.domain import TaskStatus

_STATUSES = frozenset(s.value for s in TaskStatus)
Column = ColumnElement[str] | InstrumentedAttribute[str] | InstrumentedAttribute[str | None]


def status_in(column: Column, statuses: Iterable[str]) -> ColumnElement[bool]:
    """`column IN (...)` with the statuses as SQL literals (one status: `IN ('x')`,
    which both databases read as `= 'x'`)."""
    return column.in_(_literals(statuses))


def status_not_in(column: Column, statuses: Iterable[str]) -> ColumnElement[bool]:
    """`column NOT IN (...)` with the statuses as SQL literals."""
    return column.not_in(_literals(statuses))


def _literals(statuses: Iterable[str]) -> list[ColumnElement[str]]:
    chosen = sorted(set(statuses))
    unknown = [v for v in chosen if v not in _STATUSES]
    if unknown:
        raise ValueError(f"not task statuses: {unknown}")
    return [literal_column(f"'{v}'") for v in chosen]
