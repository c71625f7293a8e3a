"""Process runners: `nico serve` (Temporal + worker + API together) and `nico worker`.

Both run the engine worker next to the task manager's background loops (queue sweep,
reconciler) and stop everything cleanly on Ctrl-C / SIGTERM: the API first, then the
worker (in-flight activities are cancelled; Temporal retries them on the next worker),
then the embedded Temporal server process.
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


async def _background(services: Services) -> None:
    from nico.tasks.background import run_background_loops

    await run_background_loops(services)


def _finished_hook(services: Services) -> Callable[[uuid.UUID], Awaitable[None]]:
    from nico.tasks.background import on_task_finished

    return on_task_finished(services)


@contextlib.asynccontextmanager
async def engine_running(services: Services, client: Client) -> AsyncIterator[None]:
    """Worker + background loops running until the block exits."""
    services.temporal = client
    worker = build_worker(client, services, on_task_finished=_finished_hook(services))
    async with worker:
        loops = asyncio.create_task(_background(services))
        try:
            yield
        finally:
            loops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loops


async def serve_all(
    services: Services,
    run_api: Callable[[Services], Awaitable[None]],
    on_ready: Callable[[], None] | None = None,
) -> None:
    """`nico serve`: Temporal (embedded unless configured), worker, loops and the API.
    `on_ready` runs once the engine is up, just before the API starts listening.
    The API server owns Ctrl-C; when it returns, the rest shuts down in order."""
    async with (
        temporal_client(services, embed=True) as client,
        engine_running(services, client),
    ):
        if on_ready is not None:
            on_ready()
        await run_api(services)


async def run_worker_only(services: Services) -> None:
    """`nico worker`: worker + loops against NICO_TEMPORAL_ADDRESS until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        temporal_client(services, embed=False) as client,
        engine_running(services, client),
    ):
        log.info(
            "worker running on task queue %s at %s",
            services.settings.temporal_task_queue,
            temporal_target(services.settings),
        )
        await stop.wait()
