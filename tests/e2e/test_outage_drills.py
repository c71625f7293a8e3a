"""Outage drills at fleet shape: 20 racks in flight on two real `nico worker` processes,
the dev server (real time) and a private PostgreSQL cluster (docs/drills.md, "Outage
drills"). Each drill is as short as its point allows.

- PostgreSQL killed for 60 s: every task still Succeeds, and no message or report shows
  a host, port or driver text (the outage is not the hardware's).
- Temporal (the dev server, as `nico serve` runs it) killed for 10 s: every task still
  Succeeds once it is back.
- Both workers killed while racks are being restarted: a fresh worker finishes them, and
  every tray was power-cycled exactly once — none reported cycled that was not, none
  cycled twice.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nico.config import Settings
from nico.domain import TaskStatus
from nico.engine.client import start_task_workflow
from nico.engine.contracts import TaskWorkflowInput
from nico.engine.devserver import dev_server_command, temporal_binary
from nico.hardware.interface import TrayRef
from nico.services import Services
from nico.store.models import OperationLedger, SimFault, Task
from tests.engine.support import (
    SimRack,
    act,
    add_fault,
    load_tray,
    make_rack,
    make_task,
    power_on_rule,
    rule,
    sim_state,
    step,
)
from tests.support.pgcluster import PrivateCluster
from tests.support.tasks import load_task
from tests.support.temporal import dev_server_address
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.temporal, pytest.mark.postgres]

RACKS = 20
LEAKS = ("127.0.0.1", "5432", "asyncpg", "sqlalchemy", "OperationalError", "Errno", "Connect call")


@pytest.fixture
def fleet_workers(
    pg_services: Services, temporal_dev_env: WorkflowEnvironment, tmp_path: Path
) -> Iterator[list[WorkerProcess]]:
    """Two `nico worker` processes on the private cluster (more may be appended)."""
    pg_services.settings.temporal_task_queue = f"drill-{uuid.uuid4().hex}"
    address = dev_server_address(temporal_dev_env)
    started = [
        WorkerProcess(pg_services, address, tmp_path / f"worker-{n}.log", sim_latency=0.5)
        for n in (1, 2)
    ]
    for worker in started:
        worker.start()
    yield started
    for worker in started:
        worker.stop()


async def _start_all(
    env: WorkflowEnvironment, services: Services, payloads: list[TaskWorkflowInput]
) -> None:
    await asyncio.gather(*(start_task_workflow(env.client, services.settings, p) for p in payloads))


async def _tasks(services: Services, payloads: list[TaskWorkflowInput]) -> list[Task]:
    return [await load_task(services, p.task_id) for p in payloads]


async def _until(services: Services, payloads: list[TaskWorkflowInput], done: set[str]) -> None:
    """Poll until every task's status is in `done` (a guard against hanging, not a timer
    under test: 10 minutes is far beyond any of these drills)."""
    for _ in range(1200):
        if all(t.status in done for t in await _tasks(services, payloads)):
            return
        await asyncio.sleep(0.5)
    stuck = [(t.id, t.status, t.message) for t in await _tasks(services, payloads)]
    raise AssertionError(f"tasks did not get there: {stuck}")


FINAL = {TaskStatus.SUCCEEDED.value, TaskStatus.FAILED.value, TaskStatus.TERMINATED.value}


def _all_succeeded(tasks: list[Task], logs: list[Path]) -> None:
    """Assert every task Succeeded; otherwise print each failed task's message and report
    and the tail of each worker's log, so a failure explains itself (pytest truncates a
    long assertion message; what is printed is shown in full with the failure)."""
    failed = [t for t in tasks if t.status != TaskStatus.SUCCEEDED.value]
    for t in failed:
        print(f"task {t.id} {t.status}: {t.message}")
        print(f"  report: {json.dumps(t.report, default=str)}")
    if failed:
        for log in logs:
            tail = log.read_text(errors="replace")[-8000:] if log.exists() else "(no log)"
            print(f"--- {log.name} (tail) ---\n{tail}")
    summary = [(t.status, t.message) for t in failed]
    assert not failed, f"{len(failed)} of {len(tasks)} tasks did not succeed: {summary}"


async def test_postgresql_killed_for_60s_every_rack_still_succeeds(
    temporal_dev_env: WorkflowEnvironment,
    pg_services: Services,
    cluster: PrivateCluster,
    fleet_workers: list[WorkerProcess],
) -> None:
    services = pg_services
    racks = [await make_rack(services, compute=4, switches=2, shelves=2) for _ in range(RACKS)]
    payloads = [await make_task(services, rack, power_on_rule()) for rack in racks]
    await _start_all(temporal_dev_env, services, payloads)
    await _until(services, payloads, {TaskStatus.RUNNING.value, *FINAL})
    cluster.stop()
    await asyncio.sleep(60)
    cluster.start()
    await _until(services, payloads, FINAL)
    tasks = await _tasks(services, payloads)
    _all_succeeded(tasks, [w.log for w in fleet_workers])
    for rack in racks:
        assert {(await load_tray(services, t.id)).power_state for t in rack.all} == {"On"}
    seen = json.dumps([[t.message, t.report] for t in tasks])
    assert not [leak for leak in (*LEAKS, str(cluster.port)) if leak in seen]


async def _shelves_on(services: Services, rack: SimRack) -> None:
    backend = services.backends.backend("simulator")
    for shelf in rack.of("PowerShelf"):
        ref: TrayRef = await services.backends.tray_ref(shelf.id)
        await backend.power_control(ref, "power_on", operation_key=str(uuid.uuid4()))


async def _cycles(services: Services, racks: list[SimRack]) -> list[int]:
    counts = []
    for rack in racks:
        for tray in rack.of("Compute"):
            state = await sim_state(services, tray.id)
            counts.append(state.power_cycles if state else 0)
    return counts


async def _unsent_intents(services: Services) -> int:
    """Cycles whose intent is recorded but that the BMC has not accepted yet: the window
    in which a crash leaves a retry unable to tell whether the cycle was sent."""
    async with services.db.session() as session:
        result = await session.execute(
            select(func.count())
            .select_from(OperationLedger)
            .where(OperationLedger.action == "power", OperationLedger.accepted.is_(None))
        )
        return int(result.scalar_one())


async def test_both_workers_killed_mid_restart_no_tray_is_reported_cycled_that_was_not(
    temporal_dev_env: WorkflowEnvironment,
    pg_services: Services,
    fleet_workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """Half of each rack's trays answer slowly, so the kill lands at a known point: the
    quick trays are cycled, the slow ones have their intent recorded and no command sent."""
    services = pg_services
    racks = [await make_rack(services, compute=6, switches=0, shelves=1) for _ in range(RACKS)]
    slow: list[uuid.UUID] = []
    for rack in racks:
        await _shelves_on(services, rack)
        for tray in rack.of("Compute")[3:]:
            slow.append(await add_fault(services, rack, "slow", tray=tray, slow_seconds=6.0))
    verify = [act("VerifyPowerStatus", "2m", "1s", expected_status="on")]
    restart = rule(step("Compute", 1, act("PowerControl"), post=verify))
    payloads = [
        await make_task(services, rack, restart, operation_code="restart", trays=rack.of("Compute"))
        for rack in racks
    ]
    await _start_all(temporal_dev_env, services, payloads)
    total = RACKS * 6
    for _ in range(1200):
        if await _unsent_intents(services) and sum(await _cycles(services, racks)) >= total // 4:
            break
        await asyncio.sleep(0.1)
    for worker in fleet_workers:
        worker.kill()
    assert await _unsent_intents(services)  # really mid-cycle: sent intent, no answer
    assert sum(await _cycles(services, racks)) < total
    async with services.db.session() as session:
        await session.execute(delete(SimFault).where(SimFault.id.in_(slow)))
    fresh = WorkerProcess(
        services, dev_server_address(temporal_dev_env), tmp_path / "worker-3.log", sim_latency=0.5
    )
    fleet_workers.append(fresh)
    fresh.start()
    await _until(services, payloads, FINAL)
    tasks = await _tasks(services, payloads)
    _all_succeeded(tasks, [w.log for w in fleet_workers])
    # Succeeded means every tray was seen to cycle: exactly once, never zero, never twice.
    assert await _cycles(services, racks) == [1] * total


class KillableTemporal:
    """The dev server as `nico serve` runs it (same command and SQLite file), in a process
    of its own that the drill SIGKILLs and starts again on the same port and file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.temporal_dev_port}"

    def launch(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        command = dev_server_command(self.settings, temporal_binary())
        with (self.settings.data_dir / "temporal.log").open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    async def start(self) -> Client:
        self.launch()
        for _ in range(240):
            try:
                return await Client.connect(self.address)
            except Exception:
                await asyncio.sleep(0.25)
        raise AssertionError("the dev server did not come up")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
async def killable_temporal(pg_services: Services) -> AsyncIterator[KillableTemporal]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = KillableTemporal(pg_services.settings.model_copy(update={"temporal_dev_port": port}))
    yield server
    server.kill()


async def test_temporal_killed_mid_task_every_rack_still_succeeds(
    pg_services: Services, killable_temporal: KillableTemporal, tmp_path: Path
) -> None:
    services = pg_services
    client = await killable_temporal.start()
    services.settings.temporal_task_queue = f"drill-{uuid.uuid4().hex}"
    workers = [
        WorkerProcess(
            services, killable_temporal.address, tmp_path / f"worker-{n}.log", sim_latency=0.5
        )
        for n in (1, 2)
    ]
    try:
        for worker in workers:
            worker.start()
        racks = [await make_rack(services, compute=4, switches=2, shelves=2) for _ in range(RACKS)]
        payloads = [await make_task(services, rack, power_on_rule()) for rack in racks]
        await asyncio.gather(*(start_task_workflow(client, services.settings, p) for p in payloads))
        await _until(services, payloads, {TaskStatus.RUNNING.value, *FINAL})
        killable_temporal.kill()
        await asyncio.sleep(10)
        await killable_temporal.start()
        # A worker that gave up while Temporal was gone is restarted, as its supervisor
        # (systemd, Kubernetes) would.
        for worker in workers:
            if worker.process is not None and worker.process.poll() is not None:
                worker.start()
        await _until(services, payloads, FINAL)
    finally:
        for worker in workers:
            worker.stop()
    tasks = await _tasks(services, payloads)
    _all_succeeded(tasks, [w.log for w in workers])
