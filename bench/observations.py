"""Observation writes benchmark: what recording a tray read costs the database.

    .venv/bin/python bench/observations.py [--racks 10] [--runs 3] [--db sqlite,postgres]

A site of `--racks` NVL72 racks (35 trays each) is written through the store, then the
same reads are recorded four ways, each in a fresh copy of the tray state:

- `UPDATE per read (before)`: what the engine did before observations were kept: one
  transaction per read, `UPDATE trays SET power_state` when it differs;
- `record per read`: `record_power` of one read per transaction (the per-call
  activities' path, no batching);
- `step flush (35 reads)`: one `record_power` per 35 reads, as a step's reads are
  flushed together (`nico.engine.observed`, every 0.25 s);
- `sync batch (50 reads)`: the state sync's batch.

The reads are a verify step's polls on every tray: PoweringOff, Off, Off, Off (so a
quarter of them change state and write history). Each variant runs in this process,
interleaved run by run; the table prints the median wall and CPU time per read over
`--runs` and the ratio against the first row (1.00 = as costly as before). PostgreSQL
rows need the server named by `NICO_BENCH_POSTGRES` (default
`postgresql+asyncpg://postgres@127.0.0.1:5432`); it is skipped when it does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select, text, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.inventory import nvl72_body

from nico import provisioning
from nico.schemas.inventory import RackCreateRequest
from nico.secretbox import SecretBox
from nico.store import inventory, observations
from nico.store.db import Database
from nico.store.history import HistorySource, Origin
from nico.store.models import Tray, TrayHistory, TrayObservation, utcnow

PG_ADMIN = os.environ.get("NICO_BENCH_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432")
POLLS = ("PoweringOff", "Off", "Off", "Off")
ORIGIN = Origin(HistorySource.TASK, uuid.uuid4(), "bench")

Recorder = Callable[[Database, list[observations.PowerReading]], Awaitable[None]]


async def build(db: Database, racks: int) -> list[uuid.UUID]:
    await db.migrate()
    secrets = SecretBox(Fernet.generate_key().decode())
    async with db.session() as session:
        provider = await inventory.get_or_create_provider(session, "bench")
        site = await provisioning.create_site(
            session, provider, name=f"bench-{uuid.uuid4().hex[:6]}", description="", flow=True
        )
        for i in range(racks):
            body = nvl72_body(str(site.id), f"rack-{i:03d}")
            await provisioning.import_rack(
                session, site, RackCreateRequest.model_validate(body), secrets
            )
        return list((await session.execute(select(Tray.id).order_by(Tray.id))).scalars())


async def reset(db: Database, trays: list[uuid.UUID]) -> None:
    """Every tray On with a good observation, no history: the state before the step."""
    now = utcnow() - timedelta(minutes=5)
    async with db.session() as session:
        await session.execute(text(f"DELETE FROM {TrayHistory.__tablename__}"))
        await session.execute(text(f"DELETE FROM {TrayObservation.__tablename__}"))
        await session.execute(update(Tray).values(power_state="On"))
        await observations.record_power(
            session, [observations.PowerReading(t, now, state="On") for t in trays], ORIGIN
        )


def readings(trays: list[uuid.UUID]) -> list[observations.PowerReading]:
    start = utcnow()
    return [
        observations.PowerReading(tray, start + timedelta(milliseconds=10 * i), state=state)
        for i, state in enumerate(POLLS)
        for tray in trays
    ]


async def update_per_read(db: Database, reads: list[observations.PowerReading]) -> None:
    for r in reads:
        async with db.session() as session:
            await session.execute(
                update(Tray)
                .where(Tray.id == r.tray_id, Tray.power_state != r.state)
                .values(power_state=r.state)
            )


def record_in_chunks(size: int) -> Recorder:
    async def record(db: Database, reads: list[observations.PowerReading]) -> None:
        for i in range(0, len(reads), size):
            async with db.session() as session:
                await observations.begin_recording(session)
                await observations.record_power(session, reads[i : i + size], ORIGIN)

    return record


VARIANTS: tuple[tuple[str, Recorder], ...] = (
    ("UPDATE per read (before)", update_per_read),
    ("record per read", record_in_chunks(1)),
    ("step flush (35 reads)", record_in_chunks(35)),
    ("sync batch (50 reads)", record_in_chunks(50)),
)


async def measure(
    db: Database, trays: list[uuid.UUID], runs: int
) -> list[tuple[str, float, float]]:
    wall: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    for _ in range(runs):
        for name, record in VARIANTS:  # interleaved: load changes hit every row alike
            await reset(db, trays)
            reads = readings(trays)
            w, c = time.perf_counter(), time.process_time()
            await record(db, reads)
            wall[name].append((time.perf_counter() - w) / len(reads))
            cpu[name].append((time.process_time() - c) / len(reads))
    return [(n, statistics.median(wall[n]), statistics.median(cpu[n])) for n, _ in VARIANTS]


def table(title: str, rows: list[tuple[str, float, float]]) -> str:
    base_wall, base_cpu = rows[0][1], rows[0][2]
    lines = [
        title,
        f"| {'variant':<26} | wall ms/read | CPU ms/read | wall ratio | CPU ratio |",
        f"|{'-' * 28}|-------------:|------------:|-----------:|----------:|",
    ]
    for name, wall, cpu in rows:
        lines.append(
            f"| {name:<26} | {wall * 1000:12.3f} | {cpu * 1000:11.3f} "
            f"| {wall / base_wall:10.2f} | {cpu / base_cpu:9.2f} |"
        )
    return "\n".join(lines)


async def on_postgres(racks: int, runs: int) -> str | None:
    import asyncpg  # type: ignore[import-untyped]

    admin = PG_ADMIN.replace("postgresql+asyncpg", "postgresql")
    name = f"nico_bench_obs_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(admin, timeout=5)
    except Exception as exc:
        return f"PostgreSQL skipped ({type(exc).__name__})"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        db = Database(f"{PG_ADMIN}/{name}")
        try:
            trays = await build(db, racks)
            rows = await measure(db, trays, runs)
        finally:
            await db.dispose()
        return table(f"PostgreSQL, {len(trays)} trays x {len(POLLS)} reads", rows)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racks", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    args = parser.parse_args()
    kinds = args.db.split(",")
    if "sqlite" in kinds:
        with tempfile.TemporaryDirectory(prefix="nico-bench-obs-") as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
            try:
                trays = await build(db, args.racks)
                rows = await measure(db, trays, args.runs)
            finally:
                await db.dispose()
        print(table(f"SQLite, {len(trays)} trays x {len(POLLS)} reads", rows), "\n")
    if "postgres" in kinds:
        print(await on_postgres(args.racks, args.runs))


if __name__ == "__main__":
    asyncio.run(main())
