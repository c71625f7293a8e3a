"""Task status only moves forward, on SQLite and PostgreSQL alike."""

import uuid

from nico.domain import TaskStatus
from nico.store.db import Database
from nico.store.models import Provider, Site, Task
from nico.store.tasks import save_running_report, transition_task, truncate_utf8


async def _task(db: Database, status: TaskStatus) -> uuid.UUID:
    async with db.session() as s:
        provider = Provider(org=f"o{uuid.uuid4().hex[:6]}", name="p")
        s.add(provider)
        await s.flush()
        site = Site(provider_id=provider.id, name="s", flow_enabled=True)
        s.add(site)
        await s.flush()
        task = Task(
            site_id=site.id,
            rack_id=uuid.uuid4(),
            operation_type="PowerControl",
            operation_code="power_on",
            status=status.value,
        )
        s.add(task)
        await s.flush()
        return task.id


async def _status(db: Database, task_id: uuid.UUID) -> Task:
    async with db.session() as s:
        task = await s.get(Task, task_id)
        assert task is not None
        return task


async def test_forward_transitions_set_timestamps(any_database: Database) -> None:
    task_id = await _task(any_database, TaskStatus.PENDING)
    async with any_database.session() as s:
        assert await transition_task(s, task_id, TaskStatus.RUNNING, message="Running")
    running = await _status(any_database, task_id)
    assert running.status == "Running" and running.started is not None
    assert running.finished is None
    async with any_database.session() as s:
        assert await transition_task(s, task_id, TaskStatus.SUCCEEDED, message="Succeeded")
    done = await _status(any_database, task_id)
    assert done.status == "Succeeded" and done.finished is not None
    assert done.started == running.started


async def test_terminal_status_never_moves(any_database: Database) -> None:
    task_id = await _task(any_database, TaskStatus.PENDING)
    async with any_database.session() as s:
        assert await transition_task(s, task_id, TaskStatus.TERMINATED, message="Cancelled")
    async with any_database.session() as s:
        # A late workflow activity must not resurrect or overwrite a cancelled task.
        assert not await transition_task(s, task_id, TaskStatus.RUNNING)
        assert not await transition_task(s, task_id, TaskStatus.FAILED, message="late")
        assert not await save_running_report(s, task_id, {"version": 1, "stages": []})
    task = await _status(any_database, task_id)
    assert task.status == "Terminated" and task.message == "Cancelled"
    assert task.report is None


async def test_waiting_cannot_jump_to_running(any_database: Database) -> None:
    task_id = await _task(any_database, TaskStatus.WAITING)
    async with any_database.session() as s:
        assert not await transition_task(s, task_id, TaskStatus.RUNNING)
        assert await transition_task(s, task_id, TaskStatus.PENDING)
    assert (await _status(any_database, task_id)).status == "Pending"


def test_truncate_keeps_utf8_whole() -> None:
    text = "é" * 300  # 600 bytes
    cut = truncate_utf8(text, 511)
    assert len(cut.encode()) <= 511
    assert cut == "é" * 255
