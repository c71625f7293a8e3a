"""Status sets are written into SQL text, so only task statuses may ever get there."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from nico.store.models import Task
from nico.store.status_sql import status_in, status_not_in


@pytest.mark.parametrize("build", [status_in, status_not_in])
def test_a_value_that_is_not_a_task_status_never_reaches_the_sql(
    build: Callable[[Any, Iterable[str]], ColumnElement[bool]],
) -> None:
    with pytest.raises(ValueError, match="not task statuses"):
        build(Task.status, ["Running", "x') OR ('1'='1"])


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_statuses_are_literals_so_nothing_is_expanded_per_request(dialect: Dialect) -> None:
    statement = select(Task.id).where(status_in(Task.status, ["Waiting", "Pending"]))
    compiled = statement.compile(dialect=dialect)
    assert "IN ('Pending', 'Waiting')" in str(compiled)
    assert not compiled.params  # no bound values left to expand on each execution
