"""List items benchmark: writing a task list page's JSON, in process, without HTTP.

    .venv/bin/python bench/list_items.py [--runs 31] [--calls 300]

At 200 tasks a tray's page holds 2 items, at 100k it holds 20; what differs between the
two (the statement no longer grows with history, docs/task-history.md) is the per-item
work. This times the body of a 2-item and a 20-item page (real SQLAlchemy rows of the
list's column types, read from SQLite) three ways, median of `--runs` runs of `--calls`
pages each:

- uncached: each item written anew (`task_list_item` and one encoder call per page, the
  code before the item cache);
- cache cold: `task_list_json` with the item cache emptied before every page (a page of
  tasks never seen, or all changed: the cache's own overhead);
- cache warm: `task_list_json` on a page seen before (a dashboard polling a page).

Decoding the rows (the driver's and SQLAlchemy's work) is not in these numbers: the
cache does not change it.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Uuid,
    create_engine,
    insert,
    select,
)

from nico.schemas import tasks as wire

_tasks = Table(
    "tasks",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("status", String),
    Column("description", String),
    Column("message", String),
    Column("rule_id", Uuid, nullable=True),
    Column("started", DateTime(timezone=True), nullable=True),
    Column("finished", DateTime(timezone=True), nullable=True),
    Column("created", DateTime(timezone=True)),
    Column("updated", DateTime(timezone=True)),
    Column("created_by", String, nullable=True),
)


def page_rows(count: int) -> list[Any]:
    """`count` finished tasks as the list reads them (rows of the list's columns)."""
    engine = create_engine("sqlite://")
    _tasks.metadata.create_all(engine)
    now = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)
    values = [
        {
            "id": uuid.uuid4(),
            "status": "Succeeded",
            "description": "Power on rack 1 (Compute, 35 trays)",
            "message": "Task completed successfully",
            "rule_id": uuid.uuid4(),
            "started": now - timedelta(minutes=i, seconds=50),
            "finished": now - timedelta(minutes=i, seconds=10),
            "created": now - timedelta(minutes=i, seconds=55),
            "updated": now - timedelta(minutes=i, seconds=10),
            "created_by": "admin@example.com",
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(_tasks), values)
        return list(conn.execute(select(_tasks).order_by(_tasks.c.created.desc())).all())


def uncached(rows: Sequence[Any]) -> str:
    return wire._dumps([wire.task_list_item(row) for row in rows])


def cache_cold(rows: Sequence[Any]) -> str:
    wire._items.clear()
    return wire.task_list_json(rows, include_report=False)


def cache_warm(rows: Sequence[Any]) -> str:
    return wire.task_list_json(rows, include_report=False)


def page_ms(build: Callable[[Sequence[Any]], str], rows: Sequence[Any], calls: int) -> float:
    """The mean time of one page over `calls` pages."""
    start = time.perf_counter()
    for _ in range(calls):
        build(rows)
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    ways = {"uncached": uncached, "cache cold": cache_cold, "cache warm": cache_warm}
    pages = {size: page_rows(size) for size in (2, 20)}
    for rows in pages.values():  # the three ways write the same bytes
        assert len({build(rows) for build in ways.values()}) == 1
    samples: dict[tuple[str, int], list[float]] = {}
    # Interleaved run by run, so load on the shared machine falls on every cell alike.
    for _ in range(args.runs):
        for name, build in ways.items():
            for size, rows in pages.items():
                build(rows)  # the warm way's page is then in the cache
                samples.setdefault((name, size), []).append(page_ms(build, rows, args.calls))
    results = {key: statistics.median(values) for key, values in samples.items()}
    print(f"\npage body (JSON), median of {args.runs} runs x {args.calls} pages, ms per page\n")
    print("| way | 2 items | 20 items | 20 / 2 |")
    print("|---|---|---|---|")
    for name in ways:
        two, twenty = results[name, 2], results[name, 20]
        print(f"| {name} | {two:.4f} | {twenty:.4f} | {twenty / two:.1f} |")
    print(
        f"\n20-item page, warm cache vs uncached: "
        f"{results['cache warm', 20] / results['uncached', 20]:.2f}x the time; "
        f"warm 20-item page vs uncached 2-item page: "
        f"{results['cache warm', 20] / results['uncached', 2]:.2f}x"
    )


if __name__ == "__main__":
    main()
