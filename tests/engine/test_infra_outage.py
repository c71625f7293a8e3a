"""Infrastructure failures are not hardware failures: an outage of nico's own database is
waited out on its own budget, never spends the rule's `maxAttempts` or a poll's timeout,
and no task message or report ever shows a host, port, driver class or library text."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from nico.domain import TaskStatus
from nico.engine import step_runner
from nico.engine.actions import _lost_to_infrastructure
from nico.engine.client import start_task_workflow
from nico.engine.infra import InfrastructureUnavailable, classify, retrying, watching
from nico.engine.payloads import Observation
from nico.engine.policy import PollDefaults
from nico.engine.retries import (
    DATABASE,
    INFRA_ERROR_TYPE,
    TEMPORAL,
    WORKER_SILENT,
    InfraBudget,
    infra_message,
    is_infra_reason,
)
from nico.engine.step_runner import observe, poll
from nico.hardware.interface import HardwareError
from nico.rules.durations import GoDuration
from nico.rules.model import RetryPolicy
from nico.services import Services
from nico.store.db import Database
from nico.store.models import Task
from nico.store.simulator import FaultKind
from tests.engine.support import (
    act,
    add_fault,
    load_tray,
    make_rack,
    make_task,
    retry,
    rule,
    sim_state,
    step,
)
from tests.support.pgcluster import PrivateCluster
from tests.support.tasks import load_task
from tests.support.temporal import dev_server_address, running_worker, wait_for_task_workflow
from tests.support.workers import WorkerProcess

# Text that would give away an internal service (and mean nico blamed itself on a tray).
LEAKS = ("127.0.0.1", "5432", "asyncpg", "sqlalchemy", "OperationalError", "Errno", "Connect call")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _refused() -> BaseException:
    """The real error of a query against a PostgreSQL that is not there."""
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nico")
    try:
        async with db.session() as session:
            await session.execute(Task.__table__.select())
    except Exception as exc:
        return exc
    finally:
        await db.dispose()
    raise AssertionError("a closed port answered")


async def test_a_database_that_refuses_connections_is_infrastructure() -> None:
    assert classify(await _refused()) == DATABASE
    assert classify(RPCError("down", RPCStatusCode.UNAVAILABLE, b"")) == TEMPORAL


def test_what_the_hardware_or_our_code_did_is_not_infrastructure() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "refused by the BMC")
        except OSError as exc:
            raise HardwareError("BMC unreachable") from exc
    except HardwareError as wrapped:
        assert classify(wrapped) is None
    assert classify(ValueError("bad input")) is None
    assert classify(TimeoutError()) is None
    assert classify(RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b"")) is None


async def test_an_outage_is_waited_out_and_the_call_made_again() -> None:
    answers: list[object] = [await _refused(), await _refused(), "answer"]
    calls = 0

    async def op() -> str:
        nonlocal calls
        calls += 1
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)

    assert await retrying(op, budget=InfraBudget(5.0, 0.01, 2.0, 0.05)) == "answer"
    assert calls == 3


async def test_an_outage_past_the_budget_names_only_the_service() -> None:
    refused = await _refused()

    async def op() -> None:
        raise refused

    with pytest.raises(InfrastructureUnavailable) as caught:
        await retrying(op, budget=InfraBudget(0.2, 0.01, 2.0, 0.05))
    text = str(caught.value)
    assert text.startswith("nico's database did not answer")
    assert not [leak for leak in LEAKS if leak in text]


async def test_a_hardware_error_is_not_retried_as_an_outage() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise HardwareError("BMC rejected power_on")

    with pytest.raises(HardwareError):
        await retrying(op)
    assert calls == 1


# --- a PostgreSQL outage in the middle of a task ------------------------------------------


async def _when_running(services: Services, task_id: str) -> None:
    for _ in range(600):
        task = await load_task(services, task_id)
        if task.status != TaskStatus.PENDING.value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the task never began")


@pytest.mark.slow
@pytest.mark.temporal
@pytest.mark.postgres
async def test_postgresql_killed_mid_task_spends_no_hardware_attempt(
    temporal_dev_env: WorkflowEnvironment, pg_services: Services, cluster: PrivateCluster
) -> None:
    """One attempt per action (maxAttempts 1), attempts of 5s and polls of 5s, PostgreSQL
    killed for 12s as the task begins: every tray the BMCs served is On, the one tray
    whose BMC rejects its command fails for exactly that, in one attempt."""
    services = pg_services
    rack = await make_rack(services, compute=4, switches=0, shelves=2)
    bad = rack.of("Compute")[0]
    await add_fault(services, rack, FaultKind.POWER_FAIL.value, tray=bad)
    once = retry(1)
    verify = [act("VerifyPowerStatus", "5s", "1s", expected_status="on")]
    definition = rule(
        step("PowerShelf", 1, act("PowerControl", "5s"), post=verify, retry=once),
        step("Compute", 2, act("PowerControl", "5s"), post=verify, retry=once),
    )
    payload = await make_task(services, rack, definition)
    async with running_worker(temporal_dev_env.client, services):
        await start_task_workflow(temporal_dev_env.client, services.settings, payload)
        await _when_running(services, payload.task_id)
        cluster.stop()
        await asyncio.sleep(12)
        cluster.start()
        await wait_for_task_workflow(temporal_dev_env.client, payload.task_id)
    task = await load_task(services, payload.task_id)
    assert task.status == TaskStatus.FAILED.value, task.message
    assert task.message == (
        f"Stage 2 failed: 1 of 4 Compute failed: {bad.name}: "
        "BMC rejected power_on (injected fault) (PowerControl)"
    )
    shelves = [await load_tray(services, t.id) for t in rack.of("PowerShelf")]
    assert [t.power_state for t in shelves] == ["On", "On"]
    others = [await load_tray(services, t.id) for t in rack.of("Compute")[1:]]
    assert [t.power_state for t in others] == ["On", "On", "On"]
    seen = json.dumps(task.report) + task.message
    assert not [leak for leak in (*LEAKS, str(cluster.port)) if leak in seen], seen


def test_waits_are_spread_between_half_and_all_of_the_backoff() -> None:
    budget = InfraBudget(600.0, 0.25, 2.0, 10.0)
    assert (budget.delay(3, 0.0), budget.delay(3, 1.0)) == (0.5, 1.0)
    assert budget.delay(40, 1.0) == 10.0


def test_a_call_lost_to_its_worker_is_made_again_with_at_most_one_more_attempt() -> None:
    rule_retry = RetryPolicy(3, GoDuration("1s", 1.0), 2.0)
    starved = TemporalTimeoutError(
        "heartbeat", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[]
    )
    assert _lost_to_infrastructure(starved, rule_retry, 0) == 2  # then 3 - 2 = 1 attempt
    down = ApplicationError("db down", 2, type=INFRA_ERROR_TYPE)
    assert _lost_to_infrastructure(down, rule_retry, 0) == 1  # attempt 1 was the BMC's
    rejected = ApplicationError("BMC rejected power_on", 3, type="HardwareError")
    assert _lost_to_infrastructure(rejected, rule_retry, 0) is None
    assert is_infra_reason(WORKER_SILENT)
    assert not is_infra_reason("power state Off")


async def test_a_poll_does_not_count_an_outage_against_its_timeout() -> None:
    """VerifyPowerStatus of 1m with the database down for longer than that: the poll
    waits the outage out and sees the tray On, instead of failing the tray."""
    down = iter([infra_message(DATABASE, "1m")] * 3)

    async def probe() -> str | None:
        await asyncio.sleep(0.05)  # each outage answer outlasts the (scaled) 1m timeout
        return next(down, None)

    assert await poll(PollDefaults(timeout=1.0, interval=1.0), probe) is None

    async def off() -> str | None:
        await asyncio.sleep(0.05)
        return "power state Off"

    assert await poll(PollDefaults(timeout=1.0, interval=1.0), off) == "power state Off"


async def test_a_poll_cut_while_waiting_out_an_outage_is_the_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A status read that is still waiting for the database when the poll's own attempt
    timeout ends it reads as the outage (waited out), not as a BMC that did not answer."""
    monkeypatch.setattr(step_runner, "POLL_ATTEMPT_TIMEOUT", 0.3)
    refused = await _refused()

    async def read() -> Observation:
        async def query() -> Observation:
            raise refused

        return await retrying(query)

    with watching():
        obs = await observe(read)
    assert obs.infra and is_infra_reason(obs.error), obs
    with watching():
        obs = await observe(lambda: asyncio.sleep(1, Observation(state="On")))
    assert not obs.infra and obs.error == "no answer within 300ms", obs


@pytest.mark.slow
@pytest.mark.temporal
@pytest.mark.postgres
async def test_postgresql_killed_longer_than_a_verify_poll_does_not_fail_the_tray(
    temporal_dev_env: WorkflowEnvironment,
    pg_services: Services,
    cluster: PrivateCluster,
    tmp_path: Path,
) -> None:
    """PostgreSQL stopped for 65 s while a shelf's VerifyPowerStatus (1m) polls, on a real
    `nico worker` (real waits): the shelf still Succeeds. It used to fail as `power state
    not readable for 1m: no answer within 1m`, the outage blamed on the BMC (the drill of
    tests/e2e/test_outage_drills.py failed that way, 2 of 20, on a loaded machine)."""
    services = pg_services
    services.settings.temporal_task_queue = f"outage-{uuid.uuid4().hex}"
    address = dev_server_address(temporal_dev_env)
    worker = WorkerProcess(services, address, tmp_path / "worker.log", sim_latency=5)
    worker.start()
    try:
        rack = await make_rack(services, compute=0, switches=0, shelves=1)
        verify = [act("VerifyPowerStatus", "1m", "1s", expected_status="on")]
        definition = rule(step("PowerShelf", 1, act("PowerControl"), post=verify))
        payload = await make_task(services, rack, definition)
        await start_task_workflow(temporal_dev_env.client, services.settings, payload)
        shelf = rack.of("PowerShelf")[0]
        for _ in range(1200):  # the command landed: the shelf settles On 5 s later
            state = await sim_state(services, shelf.id)
            if state is not None and (state.power_target is not None or state.power_on):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # VerifyPowerStatus is polling, reading Off
        cluster.stop()
        await asyncio.sleep(65)
        cluster.start()
        await wait_for_task_workflow(temporal_dev_env.client, payload.task_id)
    finally:
        worker.stop()
    task = await load_task(services, payload.task_id)
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    assert (await load_tray(services, shelf.id)).power_state == "On"
