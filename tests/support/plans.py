"""The database's plan for a statement, as text, for the plan tests on both databases."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection

from nico.store.db import Database


async def query_plan(db: Database, statement: Select[Any]) -> str:
    """SQLite's EXPLAIN QUERY PLAN or PostgreSQL's EXPLAIN of `statement`, values inlined
    (so PostgreSQL plans for these values, as it would for a request), one line per step."""
    async with db.engine.connect() as conn:
        sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        rows = (await conn.exec_driver_sql(prefix + sql)).all()
    return "\n".join(str(row[-1]) for row in rows)


async def generic_plan(db: Database, statement: Select[Any], values: dict[str, Any]) -> str:
    """PostgreSQL's generic plan of `statement` on a read-pool connection: the one plan a
    request's prepared statement keeps there for whatever values come (the pool plans
    generically, `Database.read`), made for no values in particular. PostgreSQL 15 has no
    `EXPLAIN (GENERIC_PLAN)`: the statement is PREPAREd and its EXECUTE with `values`
    EXPLAINed, which shows the plan it cached (parameters as $n)."""
    assert not db.is_sqlite, "SQLite has no plan cache: its plan is query_plan's"

    async def explain(conn: AsyncConnection) -> str:
        expanded = statement.compile(dialect=conn.dialect).construct_expanded_state(values)
        mode = (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one()
        assert mode == "force_generic_plan", f"the read pool plans per request ({mode})"
        arguments = ", ".join(_literal(v) for v in expanded.positional_parameters)
        await conn.exec_driver_sql(f"PREPARE plan_probe AS {expanded.statement}")
        try:
            rows = (await conn.exec_driver_sql(f"EXPLAIN EXECUTE plan_probe({arguments})")).all()
        finally:
            await conn.exec_driver_sql("DEALLOCATE plan_probe")
        plan = "\n".join(str(row[0]) for row in rows)
        assert re.search(r"= \(?\$\d", plan), f"not a generic plan:\n{plan}"
        return plan

    return await db.read(explain)


def _literal(value: Any) -> str:
    """An EXECUTE argument: untyped text PostgreSQL casts to the parameter's type."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def sorts_inside_a_limit(plan: str) -> bool:
    """Whether a PostgreSQL text plan sorts below a Limit: a page that sorts every
    matching row before it keeps 20, rather than reading an index in order. (A Sort above
    the page's Limit orders the page's own rows only.)"""
    lines = plan.splitlines()
    for i, line in enumerate(lines):
        if not _node(line).startswith("Limit"):
            continue
        depth = _depth(line)
        for below in lines[i + 1 :]:
            if _node(below) and _depth(below) <= depth:
                break
            if _node(below).startswith(("Sort", "Incremental Sort")):
                return True
    return False


def _node(line: str) -> str:
    text = line.strip()
    return text[4:] if text.startswith("->  ") else text if _depth(line) == 0 else ""


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip())
