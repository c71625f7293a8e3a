"""Task status sets written into a statement's text rather than bound.

The list statements filter on sets of task statuses (active, finished, the ones a
request asked for). Those come from a closed set, `TaskStatus`, so each can be part of
the statement's text: `status IN ('Pending', 'Running', 'Waiting')`. Bound instead, each
IN list is "expanded" by SQLAlchemy on every execution (a regular-expression pass over the
statement's text, ~0.1 ms of a list request's ~1 ms of CPU), and PostgreSQL's generic plan
(the read pool's, `Database.read`) would estimate a list of parameters blind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, literal_column
from sqlalchemy.orm import InstrumentedAttribute

from nico.domain import TaskStatus

_STATUSES = frozenset(s.value for s in TaskStatus)
StatusColumn = ColumnElement[str] | InstrumentedAttribute[str]


def status_in(column: StatusColumn, statuses: Iterable[str]) -> ColumnElement[bool]:
    """`column IN (...)` with the statuses as SQL literals."""
    return column.in_(_literals(statuses))


def status_not_in(column: StatusColumn, statuses: Iterable[str]) -> ColumnElement[bool]:
    """`column NOT IN (...)` with the statuses as SQL literals."""
    return column.not_in(_literals(statuses))


def _literals(statuses: Iterable[str]) -> list[ColumnElement[Any]]:
    values = sorted(set(statuses))
    unknown = [v for v in values if v not in _STATUSES]
    if unknown:  # only a task status is ever written into SQL text
        raise ValueError(f"not task statuses: {unknown}")
    return [literal_column(f"'{v}'") for v in values]
