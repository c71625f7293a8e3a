"""Dispatch of a bulk submission: many task workflows started at once, the request
answered within a bounded time.

A 100-rack request commits its 100 Pending tasks in one transaction. Starting their
workflows one after another (a Temporal round trip and a few database reads each) made
the request time grow with the fleet, and with how busy the server was. Here they start
in chunks of `DISPATCH_CHUNK` concurrent starts, with one read and one write per chunk.
The request waits for the first chunk and then for at most `ANSWER_WITHIN` seconds in
all; the rest goes on in the background and the ids are already in the answer.

Nothing here needs to finish for the tasks to run: a task still Pending without a
workflow id when the process dies (or while Temporal is unreachable) is dispatched by
the reconciler after NICO_RECONCILE_GRACE, and starting a workflow twice is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from nico.domain import TaskStatus
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import Task
from nico.tasks.dispatch import Dispatch, cancel_started, start_or_fail, workflow_inputs
from nico.tasks.queue import promote_rack

log = logging.getLogger("nico.tasks")

# Starts in flight at once: enough to hide a start's round trip, few enough that a busy
# Temporal server is not flooded (16 measured best on the 2-core development machine).
DISPATCH_CHUNK = 16
# How long a request waits for starts beyond its first chunk before answering.
ANSWER_WITHIN = 0.5

# Dispatches still running after their request answered (kept so they are not collected).
_background: set[asyncio.Task[None]] = set()
# Records of started workflows still being written (kept so they are not collected).
_recording: set[asyncio.Task[Any]] = set()

Pending = Sequence[tuple[uuid.UUID, uuid.UUID]]  # (task id, rack id)


async def dispatch_all(
    services: Services, pending: Pending, first_chunk: asyncio.Event | None = None
) -> None:
    """Start the workflows of freshly committed Pending tasks, chunk by chunk; stop at
    the first sign that Temporal is unreachable (the rest stay Pending for the
    reconciler). `first_chunk` is set once the first chunk is through."""
    try:
        await dispatch_chunks(services, pending, first_chunk)
    finally:
        if first_chunk is not None:
            first_chunk.set()


async def dispatch_chunks(
    services: Services, pending: Pending, first_chunk: asyncio.Event | None = None
) -> dict[uuid.UUID, Dispatch]:
    """What happened to each task dispatched, chunk by chunk (a task no longer Pending
    counts as STARTED: it needs no start). Stops after a chunk that found Temporal
    unreachable; the tasks after it are left out (still Pending, for the reconciler)."""
    outcomes: dict[uuid.UUID, Dispatch] = {}
    if services.temporal is None:
        log.info("%d task(s) left Pending: no Temporal client in this process", len(pending))
        return outcomes
    for start in range(0, len(pending), DISPATCH_CHUNK):
        chunk = await _dispatch_chunk(
            services, pending[start : start + DISPATCH_CHUNK], started_event=first_chunk
        )
        outcomes.update(chunk)
        if Dispatch.DEFERRED in chunk.values():
            break
    return outcomes


async def _dispatch_chunk(
    services: Services, chunk: Pending, started_event: asyncio.Event | None = None
) -> dict[uuid.UUID, Dispatch]:
    """One chunk: read payloads, start concurrently (then `started_event` is set), record
    the starts. The request answers without waiting for that record: on SQLite it waits
    for the write lock of a worker already busy with the first workflows (a 100-rack
    request waited over a second for it), and a start not yet recorded is only started
    again, a no-op, by the reconciler."""
    client = services.temporal
    assert client is not None
    racks = dict(chunk)
    try:
        async with services.db.session() as session:
            payloads = await workflow_inputs(session, list(racks))
        outcomes = await asyncio.gather(
            *(start_or_fail(services, task_id, payload) for task_id, payload in payloads.items())
        )
    finally:
        if started_event is not None:
            started_event.set()
    by_task = dict(zip(payloads, outcomes, strict=True))
    started = [task_id for task_id, outcome in by_task.items() if outcome is Dispatch.STARTED]
    if started:
        # Shielded: a dispatch cut short (the process stopping) finishes this write
        # rather than leaving its transaction, and SQLite's write lock, behind.
        record = asyncio.create_task(_record_started(services, started))
        _recording.add(record)
        record.add_done_callback(_recording.discard)
        cancelled_ids = await asyncio.shield(record)
        for task_id in cancelled_ids:
            await cancel_started(client, task_id)
    for task_id, outcome in by_task.items():
        if outcome is Dispatch.FAILED:
            await promote_rack(services, racks[task_id])
    # A task no longer Pending needed no start: nothing left to do for it.
    return {task_id: by_task.get(task_id, Dispatch.STARTED) for task_id in racks}


async def _record_started(services: Services, started: list[uuid.UUID]) -> list[uuid.UUID]:
    """Record the starts; the ids of those cancelled meanwhile (their workflow must stop)."""
    async with services.db.session() as session:
        await task_store.mark_dispatched_many(session, started)
        cancelled = await session.scalars(
            select(Task.id).where(Task.id.in_(started), Task.status == TaskStatus.TERMINATED.value)
        )
        return list(cancelled)


async def dispatch_answering_soon(services: Services, pending: Pending) -> None:
    """Dispatch `pending`; return once the first chunk is started and at most
    ANSWER_WITHIN seconds have passed, leaving the rest running in the background."""
    if not pending:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_WITHIN
    first_chunk = asyncio.Event()
    job = asyncio.create_task(dispatch_all(services, pending, first_chunk))
    _background.add(job)
    job.add_done_callback(_finished)
    await first_chunk.wait()
    # The tasks are committed either way: a failed dispatch is logged (by `_finished`)
    # and left to the reconciler, never turned into an error for ids that exist.
    await asyncio.wait({job}, timeout=max(0.0, deadline - loop.time()))


def _finished(job: asyncio.Task[None]) -> None:
    _background.discard(job)
    if not job.cancelled() and job.exception() is not None:
        log.error("dispatching a bulk submission failed", exc_info=job.exception())
