"""State sync benchmark: what one pass over every tray costs the worker (simulator).

    .venv/bin/python bench/state_sync.py [--racks 1,10] [--runs 3]

For each size, a fresh SQLite data dir gets that many NVL72 racks (35 trays each) on the
simulator, all powered on; then `StateSync.run_pass(spread=0)` reads every tray's power
state and firmware inventory back to back and records them (the reads of a real pass are
spread over `NICO_STATE_SYNC_INTERVAL`; back to back shows their cost). Printed per size:
the median over `--runs` of the pass's wall time, the worker's CPU per tray, and the share
of one core the sync takes at the default interval (300 s) — CPU per pass / 300 s.
Everything runs in this process (the simulator is in-process, as in a worker).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.inventory import make_site_with_rack
from tests.support.tasks import add_rack

from nico.config import Settings
from nico.engine.state_sync import StateSync
from nico.services import Services, build_services
from nico.store import simulator as sim_store
from nico.store.models import SimTrayState, Tray

DEFAULT_INTERVAL = 300.0


async def power_on(services: Services, tray_ids: list[uuid.UUID]) -> None:
    """Every simulated tray On (the simulator's own state, as a powered rack has it)."""
    async with services.db.session() as session:
        trays = list((await session.execute(select(Tray).where(Tray.id.in_(tray_ids)))).scalars())
        await sim_store.ensure_states(session, trays)
        await session.execute(
            update(SimTrayState).where(SimTrayState.tray_id.in_(tray_ids)).values(power_on=True)
        )


async def measure(racks: int, runs: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="nico-bench-sync-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            secret_key=Fernet.generate_key().decode(),
            auth_dev_key="bench-sync-key-" + "x" * 40,
            sim_latency=0.0,
            seed_demo=False,
            log_level="WARNING",
        )
        services = build_services(settings, create_keys=True)
        await services.db.migrate()
        try:
            site_name = f"bench-{time.time_ns()}"
            first = await make_site_with_rack(services, site_name=site_name)
            trays = list(first.tray_ids)
            for i in range(1, racks):
                made = await add_rack(services, first.site_id, f"rack-{i:03d}")
                trays.extend(made.tray_ids)
            await power_on(services, trays)
            sync = StateSync(services, interval=DEFAULT_INTERVAL)
            walls, cpus = [], []
            for _ in range(runs):
                wall, cpu = time.perf_counter(), time.process_time()
                result = await sync.run_pass(spread=0)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                assert result.power_read == result.firmware_read == len(trays), result
            return statistics.median(walls), statistics.median(cpus), len(trays)
        finally:
            await services.backends.aclose()
            await services.db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racks", default="1,10")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| racks | trays | pass wall s | CPU ms/tray | core share at 300 s |")
    print("|------:|------:|------------:|------------:|--------------------:|")
    for racks in (int(r) for r in args.racks.split(",")):
        wall, cpu, trays = await measure(racks, args.runs)
        share = cpu / DEFAULT_INTERVAL * 100
        print(
            f"| {racks:5d} | {trays:5d} | {wall:11.2f} | {cpu / trays * 1000:11.2f} "
            f"| {share:18.1f}% |"
        )


if __name__ == "__main__":
    asyncio.run(main())
