"""Migration benchmark: an upgrade 0007 -> head over a long history, and how long a tray
write waits meanwhile.

    .venv/bin/python bench/migrate.py [--tasks 100000] [--db sqlite,postgres]
                                      [--baseline ../other-checkout] [--runs 1]

A history of N finished tasks (100 racks of 18 trays; each task links its rack's 18 trays,
so 100k tasks are 1.8M links), with one idempotency key and one ledger entry per task, is
written once at head through this checkout's store and the demo inventory, then taken
back to revision 0007. Each target (this checkout, and `--baseline`'s if given, runs
interleaved) upgrades a copy of it (a copied file, or a PostgreSQL database made from it
as a template) in a process of its own, while a probe process updates one demo tray every
10 ms, each in a transaction of its own, and records how long each update took: its
longest is how long `trays` stayed locked to a writer (to within the 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PG_ADMIN = os.environ.get("NICO_BENCH_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432")
RACKS = 100
TRAYS_PER_RACK = 18
CHUNK = 5_000
FROM = "0007"

UPGRADE = """
import asyncio, logging, sys, time
from nico.store.db import Database

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

async def main() -> None:
    db = Database(sys.argv[1])
    began = time.monotonic()
    try:
        await db.migrate()
    finally:
        await db.dispose()
    print(time.monotonic() - began)

asyncio.run(main())
"""


# --- seeding (this checkout's store) -----------------------------------------------------


async def seed(url: str, data_dir: Path, tasks: int) -> str:
    """The history at head, then downgraded to FROM; returns a demo tray's id."""
    from alembic import command
    from sqlalchemy import insert, select

    from nico.config import Settings
    from nico.seed import seed_demo
    from nico.services import build_services
    from nico.store.db import alembic_config
    from nico.store.models import IdempotencyKey, OperationLedger, Tray
    from nico.store.tasks import insert_tasks

    services = build_services(Settings(database_url=url, data_dir=data_dir), create_keys=True)
    db = services.db
    await db.migrate()
    demo = await seed_demo(services)
    async with db.session() as session:
        tray_id = (
            await session.execute(select(Tray.id).where(Tray.rack_id == demo.rack_id).limit(1))
        ).scalar_one()
    rng = random.Random(7)
    racks = [
        (uuid.UUID(int=rng.getrandbits(128)), [str(uuid.uuid4()) for _ in range(TRAYS_PER_RACK)])
        for _ in range(RACKS)
    ]
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / max(tasks, 1)
    for first in range(0, tasks, CHUNK):
        rows, keys, ledger = [], [], []
        for i in range(first, min(first + CHUNK, tasks)):
            rack_id, trays = racks[i % RACKS]
            task_id, created = uuid.uuid4(), start + step * i
            rows.append(
                {
                    "id": task_id,
                    "site_id": demo.site_id,
                    "rack_id": rack_id,
                    "operation_type": "PowerControl",
                    "operation_code": "power_on",
                    "status": "Failed" if i % 50 == 0 else "Succeeded",
                    "targets": {"Compute": trays},
                    "workflow_id": str(task_id),
                    "created": created,
                    "updated": created + timedelta(seconds=30),
                }
            )
            keys.append(
                {
                    "org": "demo",
                    "key": f"key-{i}",
                    "fingerprint": "0" * 64,
                    "task_ids": [str(task_id)],
                    "created": created,
                }
            )
            ledger.append(
                {
                    "key": f"{task_id}/power/1",
                    "tray_id": uuid.UUID(trays[0]),
                    "action": "power_on",
                    "result": {},
                    "created": created,
                }
            )
        async with db.session() as session:
            await insert_tasks(session, rows)
            await session.execute(insert(IdempotencyKey), keys)
            await session.execute(insert(OperationLedger), ledger)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), FROM))
    if db.is_sqlite:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    await db.dispose()
    return str(tray_id)


# --- the probe (a writer of trays, in a process of its own) -------------------------------


def _say(out: Path, line: str) -> None:
    out.write_text(line)


def _stopped(stop: Path) -> bool:
    return stop.exists()


async def probe(url: str, tray_id: str, stop: Path, out: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, connect_args={"timeout": 60} if "sqlite" in url else {})
    update = text("UPDATE trays SET power_state = power_state WHERE id = :id")
    tray = uuid.UUID(tray_id)
    waits: list[float] = []
    async with engine.connect() as conn:
        if "sqlite" in url:
            await conn.exec_driver_sql("PRAGMA busy_timeout=60000")
        await conn.commit()
        _say(out, "ready")
        while not _stopped(stop):
            began = time.monotonic()
            await conn.execute(update, {"id": tray if "sqlite" not in url else tray.hex})
            await conn.commit()
            waits.append(time.monotonic() - began)
            await asyncio.sleep(0.01)
    await engine.dispose()
    slow = sum(1 for w in waits if w > 0.1)
    _say(out, f"{max(waits, default=0.0)} {slow} {len(waits)}")


# --- driving --------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    checkout: Path

    @property
    def python(self) -> Path:
        return self.checkout / ".venv/bin/python"


@dataclass
class Row:
    db: str
    target: str
    upgrade_s: float
    longest_tray_wait_s: float
    slow_writes: int
    writes: int
    slowest: str


def pg_admin(statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    asyncio.run(run())


def measure(target: Target, url: str, tray_id: str, work: Path) -> tuple[float, str, str]:
    stop, out = work / "stop", work / "probe.out"
    stop.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    prober = subprocess.Popen(
        [sys.executable, __file__, "--probe", url, tray_id, str(stop), str(out)]
    )
    while not out.exists():
        if prober.poll() is not None:
            raise SystemExit("the probe did not start")
        time.sleep(0.05)
    time.sleep(0.3)  # a few writes before the upgrade starts
    done = subprocess.run(
        [str(target.python), "-c", UPGRADE, url],
        cwd=target.checkout,
        check=True,
        capture_output=True,
        text=True,
    )
    time.sleep(0.3)
    stop.touch()
    prober.wait(timeout=120)
    # A checkout that logs each migration's duration (`nico.store`) names its slowest.
    took = re.findall(r"nico.store: migration (\d+): done in ([\d.]+) s", done.stderr)
    slowest = max(took, key=lambda t: float(t[1]), default=None)
    named = f"{slowest[0]} {float(slowest[1]):.2f}s" if slowest else "-"
    return float(done.stdout.split()[-1]), out.read_text(), named


def run_db(kind: str, targets: list[Target], tasks: int, runs: int, work: Path) -> list[Row]:
    rows: list[Row] = []
    if kind == "sqlite":
        template = work / "template.db"
        url_of = lambda path: f"sqlite+aiosqlite:///{path}"  # noqa: E731
        began = time.monotonic()
        tray_id = asyncio.run(seed(url_of(template), work / "data", tasks))
    else:
        template_name = f"nico_bench_migrate_{uuid.uuid4().hex[:8]}"
        pg_admin(f'CREATE DATABASE "{template_name}"')
        began = time.monotonic()
        tray_id = asyncio.run(seed(f"{PG_ADMIN}/{template_name}", work / "data", tasks))
    print(f"{kind}: seeded {tasks} tasks in {time.monotonic() - began:.0f} s", flush=True)
    try:
        for _ in range(runs):
            for target in targets:
                if kind == "sqlite":
                    copy = work / f"{target.name}.db"
                    shutil.copyfile(template, copy)
                    url = url_of(copy)
                else:
                    name = f"nico_bench_migrate_{uuid.uuid4().hex[:8]}"
                    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
                    url = f"{PG_ADMIN}/{name}"
                try:
                    seconds, probed, slowest = measure(target, url, tray_id, work)
                finally:
                    if kind == "sqlite":
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{copy}{suffix}").unlink(missing_ok=True)
                    else:
                        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                longest, slow, writes = probed.split()
                rows.append(
                    Row(kind, target.name, seconds, float(longest), int(slow), int(writes), slowest)
                )
                print(row_line(rows[-1]), flush=True)
    finally:
        if kind != "sqlite":
            pg_admin(f'DROP DATABASE IF EXISTS "{template_name}" WITH (FORCE)')
    return rows


HEADER = (
    f"{'db':<9} {'target':<9} {'upgrade':>9} {'longest tray write':>19} {'> 100 ms':>9}"
    f"  slowest migration"
)


def row_line(r: Row) -> str:
    return (
        f"{r.db:<9} {r.target:<9} {r.upgrade_s:>8.2f}s {r.longest_tray_wait_s:>18.2f}s"
        f" {r.slow_writes:>4}/{r.writes:<4}  {r.slowest}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        url, tray_id, stop, out = sys.argv[2:6]
        asyncio.run(probe(url, tray_id, Path(stop), Path(out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured interleaved")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    targets = [Target("this", here)]
    if args.baseline is not None:
        targets.insert(0, Target("baseline", args.baseline.resolve()))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="nico-bench-migrate-") as tmp:
        for kind in args.db.split(","):
            print(HEADER, flush=True)
            rows += run_db(kind, targets, args.tasks, args.runs, Path(tmp))
    print(f"\nupgrade {FROM} -> head, {args.tasks} tasks, {args.tasks * TRAYS_PER_RACK} links")
    print(HEADER)
    for r in rows:
        print(row_line(r))


if __name__ == "__main__":
    main()
