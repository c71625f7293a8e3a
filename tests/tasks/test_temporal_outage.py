"""A Temporal outage leaves tasks Pending for the reconciler instead of failing them.

The client is real, pointed at a port nobody listens on (Temporal down); once Temporal is
back (the time-skipping test server) the reconciler starts what the outage left behind.
"""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nico.domain import OperationType
from nico.engine.client import WorkflowState, task_workflow_state
from nico.errors import ServiceUnavailable
from nico.services import Services
from nico.store.models import Task, utcnow
from nico.tasks import manager, targets
from nico.tasks.cancel import cancel_task
from nico.tasks.conflicts import ConflictStrategy
from nico.tasks.queue import promote_rack
from nico.tasks.reconcile import reconcile
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import finish, load_task, statuses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def temporal_down() -> Client:
    """A client whose server is down: every call fails to connect."""
    return await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services)


def power_on(rack: MadeRack, strategy: ConflictStrategy) -> manager.OperationRequest:
    return manager.OperationRequest(
        site_id=rack.site_id,
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
        description="test",
        info={"state": "on"},
        strategy=strategy,
    )


async def whole_rack(services: Services, rack: MadeRack) -> list[targets.RackTargets]:
    async with services.db.session() as session:
        return [await targets.rack_by_id(session, rack.site_id, rack.rack_id)]


async def _age(services: Services, *task_ids: uuid.UUID) -> None:
    async with services.db.session() as session:
        await session.execute(
            update(Task)
            .where(Task.id.in_(task_ids))
            .values(updated=utcnow() - timedelta(minutes=5))
        )


async def test_submit_during_an_outage_leaves_the_task_pending(
    services: Services, rack: MadeRack, temporal_down: Client
) -> None:
    services.temporal = temporal_down
    [task_id] = await manager.submit(
        services, power_on(rack, ConflictStrategy.REJECT), await whole_rack(services, rack)
    )

    task = await load_task(services, task_id)
    assert (task.status, task.message, task.workflow_id) == ("Pending", "Pending", None)

    await _age(services, task_id)
    result = await reconcile(services)
    assert result.failed == [] and result.dispatched == []
    assert (await load_task(services, task_id)).status == "Pending"


async def test_outage_stops_promotion_and_fails_nothing(
    services: Services, rack: MadeRack, temporal_down: Client
) -> None:
    groups = await whole_rack(services, rack)
    services.temporal = None
    [running] = await manager.submit(services, power_on(rack, ConflictStrategy.REJECT), groups)
    queued = [
        (await manager.submit(services, power_on(rack, ConflictStrategy.QUEUE), groups))[0]
        for _ in range(3)
    ]
    await finish(services, running)
    services.temporal = temporal_down

    await promote_rack(services, rack.rack_id)

    # The head of the queue holds the rack, undispatched; the rest still wait behind it.
    assert await statuses(services, rack.rack_id) == ["Succeeded", "Pending", "Waiting", "Waiting"]
    assert (await load_task(services, queued[0])).workflow_id is None


@pytest.mark.temporal
async def test_reconciler_starts_what_the_outage_left_once_temporal_is_back(
    services: Services,
    rack: MadeRack,
    temporal_down: Client,
    private_temporal_env: WorkflowEnvironment,
) -> None:
    # The dispatched workflow has no worker: a server of its own keeps it off the shared one.
    temporal_env = private_temporal_env
    services.settings.temporal_task_queue = f"idle-{uuid.uuid4().hex}"
    services.temporal = temporal_down
    [task_id] = await manager.submit(
        services, power_on(rack, ConflictStrategy.REJECT), await whole_rack(services, rack)
    )
    await _age(services, task_id)
    services.temporal = temporal_env.client

    result = await reconcile(services)

    assert result.dispatched == [task_id]
    task = await load_task(services, task_id)
    assert task.status == "Pending" and task.workflow_id == str(task_id)
    assert await task_workflow_state(temporal_env.client, task_id) is WorkflowState.RUNNING


async def test_cancel_during_an_outage_answers_503_and_changes_nothing(
    services: Services, rack: MadeRack, temporal_down: Client
) -> None:
    services.temporal = None
    [task_id] = await manager.submit(
        services, power_on(rack, ConflictStrategy.REJECT), await whole_rack(services, rack)
    )
    async with services.db.session() as session:
        await session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(status="Running", workflow_id=str(task_id), message="Running stage 1/3")
        )
    services.temporal = temporal_down

    with pytest.raises(ServiceUnavailable, match="Temporal is not reachable"):
        await cancel_task(services, task_id, rack.site_id, wait=0.1)

    task = await load_task(services, task_id)
    assert (task.status, task.message) == ("Running", "Running stage 1/3")
