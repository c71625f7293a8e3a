"""Task writes benchmark: what a task's life costs the store (its triggers included).

    .venv/bin/python bench/task_writes.py [--tasks 200] [--trays 35] [--runs 5]
        [--db sqlite,postgres] [--baseline ../other-checkout]

For each database, every run migrates a fresh database and writes `--tasks` tasks of
`--trays` trays each the way the engine does, in process, without HTTP or Temporal:

- submit: one transaction inserting them all Pending with their tray links (a bulk
  power-on's submission);
- start, finish: one transaction per task moving it Pending -> Running, then
  Running -> Succeeded (each workflow's own transitions);
- import: one transaction inserting as many tasks already Succeeded (the bulk path
  bench/reads.py seeds its history with).

Printed: the median over `--runs` of each phase's wall time, per task, and the rack and
tray counter rows the triggers wrote (before any sweep folds them). `--baseline DIR`
runs this script with DIR's interpreter (so DIR's store code and migrations), run by
run interleaved with this checkout, so both columns come from one machine at one time.
PostgreSQL: `NICO_BENCH_POSTGRES` (default postgresql+asyncpg://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reads import PG_ADMIN, pg_database_async

PHASES = ("submit", "start", "finish", "import")


def _rows(site_id: uuid.UUID, tasks: int, trays: int, status: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for i in range(tasks):
        created = now - timedelta(seconds=tasks - i)
        rows.append(
            {
                "id": uuid.uuid4(),
                "site_id": site_id,
                "rack_id": uuid.uuid4(),
                "operation_type": "PowerControl",
                "operation_code": "power_on",
                "status": status,
                "targets": {"Compute": [str(uuid.uuid4()) for _ in range(trays)]},
                "created": created,
                "updated": created,
            }
        )
    return rows


async def _counter_rows(db: Any) -> int:
    from sqlalchemy import text

    async with db.session() as session:
        total = 0
        for table in ("task_rack_counts", "task_tray_counts"):
            total += (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        return int(total)


async def one_run(db_kind: str, tasks: int, trays: int) -> dict[str, float]:
    """One fresh database, every phase timed; the seconds of each and counter rows."""
    from nico.domain import TaskStatus
    from nico.store.db import Database
    from nico.store.models import Provider, Site
    from nico.store.tasks import insert_tasks, transition_task

    with tempfile.TemporaryDirectory(prefix="nico-bench-writes-") as tmp:
        name = f"nico_bench_writes_{uuid.uuid4().hex[:8]}"
        if db_kind == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'nico.db'}"
        else:
            await pg_database_async("create", name)
            url = f"{PG_ADMIN}/{name}"
        db = Database(url)
        try:
            await db.migrate()
            site_id, provider_id = uuid.uuid4(), uuid.uuid4()
            async with db.session() as session:
                session.add(Provider(id=provider_id, org=f"bench-{name}", name="p"))
                await session.flush()
                session.add(Site(id=site_id, provider_id=provider_id, name="s"))
            result: dict[str, float] = {}
            rows = _rows(site_id, tasks, trays, "Pending")
            t0 = time.perf_counter()
            async with db.session() as session:
                await insert_tasks(session, rows)
            result["submit"] = time.perf_counter() - t0
            for phase, source, target in (
                ("start", TaskStatus.PENDING, TaskStatus.RUNNING),
                ("finish", TaskStatus.RUNNING, TaskStatus.SUCCEEDED),
            ):
                t0 = time.perf_counter()
                for row in rows:
                    async with db.session() as session:
                        await transition_task(session, row["id"], target, expected=source)
                result[phase] = time.perf_counter() - t0
            result["rows_life"] = await _counter_rows(db)
            settled = _rows(site_id, tasks, trays, "Succeeded")
            t0 = time.perf_counter()
            async with db.session() as session:
                await insert_tasks(session, settled)
            result["import"] = time.perf_counter() - t0
            result["rows_import"] = await _counter_rows(db) - result["rows_life"]
            return result
        finally:
            await db.dispose()
            if db_kind != "sqlite":
                await pg_database_async("drop", name)


def _child(python: Path, db_kind: str, tasks: int, trays: int) -> dict[str, float]:
    command = [str(python), __file__, "--child", "--db", db_kind]
    out = subprocess.run(
        [*command, "--tasks", str(tasks), "--trays", str(trays)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--trays", type=int, default=35)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite,postgres (default both)")
    parser.add_argument("--baseline", type=Path, help="another checkout, run by run interleaved")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(one_run(args.db, args.tasks, args.trays))))
        return
    targets = [("this", Path(sys.executable))]
    if args.baseline is not None:
        targets.insert(0, ("baseline", args.baseline.resolve() / ".venv" / "bin" / "python"))
    print(f"{args.tasks} tasks of {args.trays} trays, median of {args.runs} runs (ms per task)")
    print(
        f"{'db':<10} {'checkout':<9} "
        + " ".join(f"{p:>8}" for p in PHASES)
        + f" {'life':>8} {'rows/life':>10} {'rows/import':>12}"
    )
    for db_kind in args.db.split(","):
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in targets}
        for _ in range(args.runs):
            for label, python in targets:
                runs[label].append(_child(python, db_kind, args.tasks, args.trays))
        for label, _ in targets:
            mine = runs[label]

            def median(key: str, mine: list[dict[str, float]] = mine) -> float:
                return statistics.median(r[key] for r in mine)

            per_task = {p: 1000 * median(p) / args.tasks for p in PHASES}
            life = per_task["submit"] + per_task["start"] + per_task["finish"]
            print(
                f"{db_kind:<10} {label:<9} "
                + " ".join(f"{per_task[p]:>8.2f}" for p in PHASES)
                + f" {life:>8.2f} {median('rows_life') / args.tasks:>10.0f}"
                + f" {median('rows_import') / args.tasks:>12.0f}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
