"""The database's plan for a statement, as text, for the plan tests on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from nico.store.db import Database


async def query_plan(db: Database, statement: Select[Any]) -> str:
    """SQLite's EXPLAIN QUERY PLAN or PostgreSQL's EXPLAIN of `statement`, values inlined
    (so PostgreSQL plans for these values, as it would for a request), one line per step."""
    async with db.engine.connect() as conn:
        sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        rows = (await conn.exec_driver_sql(prefix + sql)).all()
    return "\n".join(str(row[-1]) for row in rows)
