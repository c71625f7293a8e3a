"""Process runners: the worker (`nico worker`, and the worker process of `nico serve`)
and the task manager's background loops (queue sweep, reconciler).

`nico serve` runs the worker and the API in separate processes (`nico.cli.supervise`);
`engine_running` also serves the engine benchmark, which wants the stack in-process.
A worker stops cleanly on SIGINT / SIGTERM: in-flight activities are cancelled and
Temporal retries them on the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from temporalio.client import Client

from nico.engine.client import connect, temporal_target
from nico.engine.devserver import EmbeddedTemporal
from nico.engine.state_sync import StateSync
from nico.engine.worker import build_worker
from nico.services import Services

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 60.0


async def connect_with_retry(services: Services) -> Client:
    """Connect to NICO_TEMPORAL_ADDRESS, retrying while it comes up (deploy order varies)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT
    delay = 0.5
    while True:
        try:
            return await connect(services.settings)
        except Exception as exc:
            if loop.time() + delay > deadline:
                raise SystemExit(
                    f"cannot reach Temporal at {temporal_target(services.settings)}: {exc}"
                ) from exc
            log.warning("Temporal not reachable yet (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def temporal_client(services: Services, *, embed: bool) -> AsyncIterator[Client]:
    """The configured Temporal, or (embed and no NICO_TEMPORAL_ADDRESS) the embedded one."""
    if services.settings.temporal_address or not embed:
        yield await connect_with_retry(services)
        return
    async with EmbeddedTemporal(services.settings) as client:
        yield client


async def run_background(services: Services) -> None:
    """The task manager's background loops (queue sweep, reconciler) until cancelled."""
    await _background(services)


async def _background(services: Services) -> None:
    from nico.tasks.background import run_background_loops

    await run_background_loops(services)


def _finished_hook(services: Services) -> Callable[[uuid.UUID], Awaitable[None]]:
    from nico.tasks.background import on_task_finished

    return on_task_finished(services)


@contextlib.asynccontextmanager
async def engine_running(
    services: Services, client: Client, *, loops: bool = True
) -> AsyncIterator[None]:
    """Worker (+ background loops unless `loops=False`) running until the block exits."""
    services.temporal = client
    worker = build_worker(client, services, on_task_finished=_finished_hook(services))
    async with worker:
        # The state sync belongs to the worker (it reads hardware, as activities do).
        helpers = [asyncio.create_task(StateSync(services).run())]
        if loops:
            helpers.append(asyncio.create_task(_background(services)))
        try:
            yield
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper


async def run_worker_only(
    services: Services, *, loops: bool = True, until: Awaitable[None] | None = None
) -> None:
    """`nico worker`: worker + loops (unless `loops=False`: `nico serve` runs them in its
    API process) against NICO_TEMPORAL_ADDRESS until SIGINT/SIGTERM or `until` returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(until) if until is not None else None
    if watcher is not None:
        watcher.add_done_callback(lambda _: stop.set())
    async with (
        temporal_client(services, embed=False) as client,
        engine_running(services, client, loops=loops),
    ):
        log.info(
            "worker running on task queue %s at %s",
            services.settings.temporal_task_queue,
            temporal_target(services.settings),
        )
        await stop.wait()
    if watcher is not None:
        watcher.cancel()
