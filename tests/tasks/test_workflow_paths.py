"""The task manager against a real Temporal (time-skipping test server): dispatch, its
failure, graceful cancel, cancel with no worker to answer, and the reconciler."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nico.domain import OperationType, TaskStatus
from nico.engine import activities
from nico.engine.client import WorkflowState, task_workflow_state, terminate_task_workflow
from nico.services import Services
from nico.store.models import OperationRule, Task, utcnow
from nico.tasks import manager, targets
from nico.tasks.background import on_task_finished
from nico.tasks.cancel import cancel_task
from nico.tasks.conflicts import ConflictStrategy
from nico.tasks.reconcile import reconcile
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE, load_task
from tests.support.temporal import running_worker, wait_for_task_workflow

pytestmark = pytest.mark.temporal

SLEEP_RULE = {
    "version": "v1",
    "steps": [
        {
            "componentType": "PowerShelf",
            "stage": 1,
            "maxParallel": 0,
            "mainOperation": {"name": "Sleep", "parameters": {"duration": "1h"}},
        },
        {
            "componentType": "Compute",
            "stage": 2,
            "maxParallel": 0,
            "mainOperation": {"name": "Sleep", "parameters": {"duration": "1s"}},
        },
    ],
}


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services)


@pytest.fixture
async def sleepy_rule(services: Services, rack: MadeRack) -> uuid.UUID:
    """A power_on rule whose first stage sleeps an hour (time does not skip unless a
    test awaits a workflow result), so a task stays Running until cancelled."""
    return await store_power_on_rule(services, rack, "sleepy", SLEEP_RULE)


async def store_power_on_rule(
    services: Services, rack: MadeRack, name: str, definition: dict[str, Any]
) -> uuid.UUID:
    async with services.db.session() as session:
        rule = OperationRule(
            site_id=rack.site_id,
            name=name,
            operation_type="PowerControl",
            operation_code="power_on",
            rule_definition=definition,
        )
        session.add(rule)
        await session.flush()
        return rule.id


@pytest.fixture
async def no_worker(
    private_temporal_env: WorkflowEnvironment, services: Services
) -> AsyncIterator[Client]:
    """Temporal reachable, but nobody polls this test's task queue (a server of the
    test's own: workflows nobody runs would stop the shared one from skipping time)."""
    services.settings.temporal_task_queue = f"idle-{uuid.uuid4().hex}"
    services.temporal = private_temporal_env.client
    yield private_temporal_env.client
    services.temporal = None


def request(
    rack: MadeRack,
    pinned: uuid.UUID | None = None,
    strategy: ConflictStrategy = ConflictStrategy.REJECT,
) -> manager.OperationRequest:
    return manager.OperationRequest(
        site_id=rack.site_id,
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
        description="test",
        info={"state": "on"},
        pinned_rule_id=pinned,
        strategy=strategy,
    )


async def whole_rack(services: Services, rack: MadeRack) -> list[targets.RackTargets]:
    async with services.db.session() as session:
        return [await targets.rack_by_id(session, rack.site_id, rack.rack_id)]


async def wait_status(services: Services, task_id: uuid.UUID, status: str) -> Task:
    for _ in range(200):
        task = await load_task(services, task_id)
        if task.status == status:
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} is {task.status}, never {status}")


async def wait_first_stage_running(services: Services, task_id: uuid.UUID) -> Task:
    """The task once its saved report shows stage 1 running (Running comes just before)."""
    await wait_status(services, task_id, "Running")
    for _ in range(200):
        task = await load_task(services, task_id)
        if task.report and task.report["stages"][0]["status"] == "running":
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never showed stage 1 running: {task.report}")


async def workflow_closed(client: Client, task_id: uuid.UUID) -> bool:
    for _ in range(100):
        if await task_workflow_state(client, task_id) is not WorkflowState.RUNNING:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_graceful_cancel_finalizes_the_report_and_promotes_the_queue(
    temporal_env: WorkflowEnvironment, services: Services, rack: MadeRack, sleepy_rule: uuid.UUID
) -> None:
    async with running_worker(
        temporal_env.client, services, on_task_finished=on_task_finished(services)
    ):
        groups = await whole_rack(services, rack)
        [task_id] = await manager.submit(services, request(rack, sleepy_rule), groups)
        [queued] = await manager.submit(
            services, request(rack, sleepy_rule, ConflictStrategy.QUEUE), groups
        )
        running = await wait_first_stage_running(services, task_id)
        assert running.workflow_id == str(task_id)

        task = await cancel_task(services, task_id, rack.site_id)

        assert (task.status, task.message) == ("Terminated", "Cancelled by user")
        assert task.report is not None
        first = task.report["stages"][0]
        assert first["status"] == "failed" and first["error"] == "cancelled by user"
        assert task.report["stages"][1]["status"] == "pending"
        # The workflow wrote it itself (and closes right after); the rack's queue moved on.
        assert await workflow_closed(temporal_env.client, task_id)
        await wait_status(services, queued, "Running")
        await cancel_task(services, queued, rack.site_id)


async def test_hard_cancel_finalizes_the_live_report_not_a_lagging_saved_one(
    private_temporal_env: WorkflowEnvironment,
    services: Services,
    rack: MadeRack,
    sleepy_rule: uuid.UUID,
) -> None:
    # A hard terminate abandons work in flight: keep it off the shared server.
    async with running_worker(private_temporal_env.client, services):
        groups = await whole_rack(services, rack)
        [task_id] = await manager.submit(services, request(rack, sleepy_rule), groups)
        running = await wait_first_stage_running(services, task_id)
        # The saved report lags the workflow's (a save not yet made under load).
        assert running.report is not None
        stale = {**running.report, "stages": [dict(s) for s in running.report["stages"]]}
        stale["stages"][0] = {**stale["stages"][0], "status": "pending"}
        async with services.db.session() as session:
            await session.execute(update(Task).where(Task.id == task_id).values(report=stale))

        # No time to stop gracefully: the cancel terminates the workflow itself.
        task = await cancel_task(services, task_id, rack.site_id, wait=0.0)

    assert (task.status, task.message) == ("Terminated", "Cancelled by user")
    assert task.report is not None
    first = task.report["stages"][0]
    assert (first["status"], first["error"]) == ("failed", "cancelled by user")
    assert first["startedAt"] and first["finishedAt"]


async def test_cancel_without_a_worker_terminates_and_finalizes_itself(
    no_worker: Client, services: Services, rack: MadeRack
) -> None:
    [task_id] = await manager.submit(services, request(rack), await whole_rack(services, rack))
    pending = await load_task(services, task_id)
    assert pending.status == "Pending" and pending.workflow_id == str(task_id)
    assert await task_workflow_state(no_worker, task_id) is WorkflowState.RUNNING

    task = await cancel_task(services, task_id, rack.site_id, wait=0.3)

    assert (task.status, task.message) == ("Terminated", "Cancelled by user")
    assert await task_workflow_state(no_worker, task_id) is WorkflowState.TERMINATED


async def test_dispatch_failure_fails_the_task_and_frees_the_rack(
    no_worker: Client, services: Services, rack: MadeRack
) -> None:
    services.temporal = None
    groups = await whole_rack(services, rack)
    [task_id] = await manager.submit(services, request(rack), groups)
    [queued] = await manager.submit(
        services, request(rack, strategy=ConflictStrategy.QUEUE), groups
    )
    # A snapshot the engine cannot start (stands in for any refusal to start).
    broken = {"version": "v1", "steps": [{"componentType": "Toaster", "stage": 1}]}
    await _age(services, task_id, rule_definition=broken)
    services.temporal = no_worker

    result = await reconcile(services)

    assert result.failed == [task_id]
    task = await load_task(services, task_id)
    assert task.status == "Failed"
    assert task.message.startswith("Failed to start the task workflow: ")
    assert task.workflow_id is None
    promoted = await load_task(services, queued)
    assert promoted.status == "Pending" and promoted.workflow_id == str(queued)
    assert await task_workflow_state(no_worker, queued) is WorkflowState.RUNNING


async def _age(services: Services, task_id: uuid.UUID, **values: object) -> None:
    async with services.db.session() as session:
        await session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(updated=utcnow() - timedelta(minutes=5), **values)
        )


async def test_reconciler_dispatches_orphans_and_fails_dead_workflows(
    no_worker: Client, services: Services, rack: MadeRack
) -> None:
    made = [await make_site_with_rack(services) for _ in range(4)]
    ids = []
    services.temporal = None  # the API process had no Temporal: all stay undispatched
    for r in made:
        [task_id] = await manager.submit(services, request(r), await whole_rack(services, r))
        ids.append(task_id)
    services.temporal = no_worker
    orphan, vanished, killed, fresh = ids

    await _age(services, orphan)
    # A Running task whose workflow Temporal never heard of (history lost).
    report = {
        "version": 1,
        "stages": [
            {
                "number": 1,
                "status": "running",
                "steps": [
                    {"componentType": "PowerShelf", "status": "running", "totalComponents": 8}
                ],
            }
        ],
    }
    await _age(services, vanished, status="Running", workflow_id=str(vanished), report=report)
    # A task whose workflow was terminated behind the task manager's back.
    await _age(services, killed)
    result = await reconcile(services)
    assert set(result.dispatched) == {orphan, killed}
    assert result.failed == [vanished]
    await terminate_task_workflow(no_worker, killed, "operator")
    await _age(services, killed)

    result = await reconcile(services)

    assert result.failed == [killed] and result.dispatched == []
    assert (await load_task(services, orphan)).status == "Pending"
    assert await task_workflow_state(no_worker, orphan) is WorkflowState.RUNNING
    lost = await load_task(services, vanished)
    assert lost.status == "Failed" and "not found" in lost.message
    assert lost.report is not None and lost.report["error"] == lost.message
    assert lost.report["stages"][0]["status"] == "failed"
    ended = await load_task(services, killed)
    assert ended.status == "Failed"
    assert f"Workflow {killed} ended (Terminated) without finishing the task" in ended.message
    # Inside the grace period nothing is touched.
    assert (await load_task(services, fresh)).status == TaskStatus.PENDING.value
    assert (await load_task(services, fresh)).workflow_id is None


async def test_reconciler_without_temporal_does_nothing(services: Services, rack: MadeRack) -> None:
    [task_id] = await manager.submit(services, request(rack), await whole_rack(services, rack))
    await _age(services, task_id)
    result = await reconcile(services)
    assert result.dispatched == [] and result.failed == []


async def test_upgrade_without_a_version_installs_and_verifies_the_catalogs_highest(
    temporal_env: WorkflowEnvironment,
    services: Services,
    rack: MadeRack,
    client: httpx.AsyncClient,
    auth: dict[str, str],
) -> None:
    catalog = {
        "Compute": {
            "2.9.0": "https://fw.example/compute-2.9.0.fwpkg",
            "2.10.0": "https://fw.example/compute-2.10.0.fwpkg",
        }
    }
    site = await client.patch(
        f"{BASE}/site/{rack.site_id}", json={"redfish": {"firmwareCatalog": catalog}}, headers=auth
    )
    assert site.status_code == 200, site.text
    tray = rack.trays["Compute"][0]
    async with running_worker(temporal_env.client, services):
        power = await client.patch(
            f"{BASE}/rack/{rack.rack_id}/power",
            json={"siteId": str(rack.site_id), "state": "on"},
            headers=auth,
        )
        assert power.status_code == 200, power.text
        await wait_for_task_workflow(temporal_env, power.json()["taskIds"][0])
        response = await client.patch(
            f"{BASE}/tray/{tray}/firmware", json={"siteId": str(rack.site_id)}, headers=auth
        )
        assert response.status_code == 200, response.text
        [task_id] = response.json()["taskIds"]
        await wait_for_task_workflow(temporal_env, task_id)

    task = await load_task(services, task_id)
    assert (task.status, task.message) == ("Succeeded", "Succeeded")
    shown = await client.get(f"{BASE}/tray/{tray}?siteId={rack.site_id}", headers=auth)
    assert shown.json()["firmwareVersion"] == "2.10.0"


class Gate:
    """Holds a real step of the engine (a database write, an inventory read) until the
    test opens it, so a cancel can land exactly while that step is in flight."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def hold(self) -> None:
        self.entered.set()
        await self.opened.wait()


async def cancel_reached_workflow(client: Client, task_id: uuid.UUID) -> None:
    """Until the workflow has run a workflow task after the cancel request."""
    requested = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    handled = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    handle = client.get_workflow_handle(str(task_id))
    for _ in range(200):
        events = [event.event_type async for event in handle.fetch_history_events()]
        if requested in events and handled in events[events.index(requested) :]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cancel never reached the workflow")


async def cancel_at_the_gate(
    temporal_env: WorkflowEnvironment,
    services: Services,
    rack: MadeRack,
    rule_id: uuid.UUID,
    gate: Gate,
) -> Task:
    """Run a task until it reaches `gate`, cancel it there, then let it go on; the task
    as the cancel returns it."""
    async with running_worker(temporal_env.client, services):
        groups = await whole_rack(services, rack)
        [task_id] = await manager.submit(services, request(rack, rule_id), groups)
        await asyncio.wait_for(gate.entered.wait(), 30)
        cancelling = asyncio.create_task(cancel_task(services, task_id, rack.site_id, wait=30))
        await cancel_reached_workflow(temporal_env.client, task_id)
        gate.opened.set()
        return await cancelling


async def test_cancel_while_the_task_begins_ends_it_terminated_not_failed(
    temporal_env: WorkflowEnvironment,
    services: Services,
    rack: MadeRack,
    sleepy_rule: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate()
    tray_refs = services.backends.tray_refs

    async def held_tray_refs(ids: Any) -> Any:  # begin_task's first read
        await gate.hold()
        return await tray_refs(ids)

    monkeypatch.setattr(services.backends, "tray_refs", held_tray_refs)
    task = await cancel_at_the_gate(temporal_env, services, rack, sleepy_rule, gate)

    assert (task.status, task.message) == ("Terminated", "Cancelled by user")
    assert task.report is not None and task.report["error"] == "cancelled by user"
    assert [s["status"] for s in task.report["stages"]] == ["pending", "pending"]


async def test_cancel_while_the_final_status_is_written_keeps_the_outcome(
    temporal_env: WorkflowEnvironment,
    services: Services,
    rack: MadeRack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick = await store_power_on_rule(
        services, rack, "quick", {**SLEEP_RULE, "steps": SLEEP_RULE["steps"][1:]}
    )
    gate = Gate()
    transition = activities.transition_task

    async def held_transition(session: Any, task_id: Any, status: TaskStatus, **kw: Any) -> Any:
        if status is TaskStatus.SUCCEEDED:
            await gate.hold()
        return await transition(session, task_id, status, **kw)

    monkeypatch.setattr(activities, "transition_task", held_transition)
    task = await cancel_at_the_gate(temporal_env, services, rack, quick, gate)

    # Every stage had completed: the task is Succeeded, not an internal error.
    assert (task.status, task.message) == ("Succeeded", "Succeeded")
    assert task.report is not None and "error" not in task.report
    assert [s["status"] for s in task.report["stages"]] == ["completed"]
