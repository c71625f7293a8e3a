"""`nico serve` (everything, embedded defaults) and `nico api` (API only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import typer
import uvicorn

from nico.api.app import create_app
from nico.auth.tokens import mint_dev_token
from nico.cli.api_workers import supervise_api_workers
from nico.cli.listen import LISTEN_FD, inherited_socket
from nico.cli.supervise import (
    NO_LOOPS,
    UNDER_SERVE,
    supervise,
    watch_parent,
    worker_orphaned,
)
from nico.config import Settings
from nico.logs import configure_logging
from nico.metrics import prepare_dir as prepare_metrics_dir
from nico.runner import connect_with_retry, run_background, run_worker_only
from nico.seed import DEMO_TOKEN_TTL, DemoInventory, demo_banner, seed_demo
from nico.services import Services, auth_summary, build_services


def start_services(settings: Settings, *, create_keys: bool) -> Services:
    """Services for a command, after saying which tokens the process accepts."""
    services = build_services(settings, create_keys=create_keys)
    logging.getLogger("nico.auth").info(auth_summary(settings, services.verifier.dev_key))
    return services


SQLITE_SPLIT_WARNING = (
    "nico %s is using SQLite (%s): every process shares the file's one write lock, so "
    "submissions, reports and queue promotion of all processes wait for each other, and "
    "only processes on this host can use it. Split deployments need PostgreSQL "
    "(NICO_DATABASE_URL); for a single host run `nico serve`."
)


def warn_if_sqlite(services: Services, command: str) -> None:
    """Split commands (`nico api`, `nico worker`) say loudly when they run on SQLite,
    which serializes every writer of every process (tests still run a worker on SQLite,
    so no refusal; `nico serve` runs its own two processes on it knowingly)."""
    if services.db.is_sqlite:
        logging.getLogger("nico").warning(SQLITE_SPLIT_WARNING, command, services.db.url)


async def prepare(services: Services) -> DemoInventory | None:
    """Create/migrate the schema and seed the demo inventory (NICO_SEED_DEMO)."""
    await services.db.migrate()
    if services.settings.seed_demo:
        return await seed_demo(services)
    return None


def print_demo_banner(services: Services, demo: DemoInventory) -> None:
    """How to use the demo: the site id, a PROVIDER_ADMIN token and two curl lines."""
    dev_key = services.verifier.dev_key
    token = (
        mint_dev_token(dev_key, demo.org, ["PROVIDER_ADMIN"], ttl_seconds=DEMO_TOKEN_TTL)
        if dev_key
        else None
    )
    print(demo_banner(services.settings, demo, token), flush=True)


class ApiServer(uvicorn.Server):
    """uvicorn whose SIGINT/SIGTERM only asks it to stop.

    Stock uvicorn re-raises the signal once it has shut down; for SIGTERM (how systemd
    and Kubernetes stop a service) the default action then kills the process before
    `nico serve` stops its worker and the embedded Temporal server, orphaning it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def api_server(services: Services) -> ApiServer:
    settings = services.settings
    config = uvicorn.Config(
        create_app(services),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="off",
    )
    return ApiServer(config)


async def run_api(services: Services, listen_fd: int = -1) -> None:
    """Serve the API; with `listen_fd` (a child of NICO_API_WORKERS) on the inherited
    socket, stopping by itself if the `nico api` that started it is gone."""
    if listen_fd < 0:
        await api_server(services).serve()
        return
    server = api_server(services)
    orphaned = asyncio.create_task(watch_parent(os.getppid()))
    orphaned.add_done_callback(lambda _: setattr(server, "should_exit", True))
    try:
        await server.serve(sockets=[inherited_socket(listen_fd)])
    finally:
        orphaned.cancel()


async def run_api_under_serve(
    services: Services, parent: int, listen_fd: int = -1, *, loops: bool = True
) -> None:
    """An API process of `nico serve`: the API (on the socket `nico serve` bound when it
    runs several) plus, with `loops`, the background loops (queue sweep, reconciler),
    which stay responsive here while the worker process is saturated. Stops on SIGTERM
    from `nico serve`, or by itself if `nico serve` is gone."""
    server = api_server(services)
    tasks = [asyncio.create_task(watch_parent(parent))]
    tasks[0].add_done_callback(lambda _: setattr(server, "should_exit", True))
    if loops:
        tasks.append(asyncio.create_task(run_background(services)))
    try:
        if listen_fd < 0:
            await server.serve()
        else:
            await server.serve(sockets=[inherited_socket(listen_fd)])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_api_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run an API process's event loop: uvloop when installed (uvicorn[standard] brings
    it), whose loop and thread wake-ups cost a request less CPU than asyncio's. uvicorn
    picks uvloop only when it creates the loop itself, which `nico api` does not."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


UnderServeOption = typer.Option(
    False, UNDER_SERVE, hidden=True, help="Run as a child process of `nico serve`."
)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve() -> None:
        """Run everything on embedded defaults: database, Temporal, worker, API on
        127.0.0.1:8388 (the worker and the API in processes of their own)."""
        settings = Settings()
        configure_logging(settings)
        services = start_services(settings, create_keys=True)

        async def main() -> int:
            try:
                demo = await prepare(services)
            finally:
                await services.db.dispose()
            banner = (lambda: print_demo_banner(services, demo)) if demo else None
            prepare_metrics_dir(settings.data_dir)  # the children add up their metrics
            return await supervise(settings, on_ready=banner)

        code = asyncio.run(main())
        if code:
            # Not typer.Exit: in non-standalone mode click returns that code unseen.
            raise SystemExit(code)

    @app.command("worker")
    def worker(under_serve: bool = UnderServeOption) -> None:
        """Run only a Temporal worker (and the queue sweep / reconciler) against
        NICO_TEMPORAL_ADDRESS; production runs several next to `nico api` replicas."""
        settings = Settings()
        configure_logging(settings)
        services = start_services(settings, create_keys=False)
        if not under_serve:
            warn_if_sqlite(services, "worker")
        parent = os.getppid()

        async def main() -> None:
            try:
                await services.db.migrate()
                if under_serve:
                    await run_worker_only(services, loops=False, until=worker_orphaned(parent))
                else:
                    await run_worker_only(services)
            finally:
                await services.backends.aclose()
                await services.db.dispose()

        asyncio.run(main())

    @app.command("api")
    def api(
        under_serve: bool = UnderServeOption,
        listen_fd: int = typer.Option(-1, LISTEN_FD, hidden=True),
        no_loops: bool = typer.Option(False, NO_LOOPS, hidden=True),
    ) -> None:
        """Run only the API (production: several replicas against NICO_DATABASE_URL;
        NICO_API_WORKERS processes each)."""
        settings = Settings()
        configure_logging(settings)
        services = start_services(settings, create_keys=False)
        child = listen_fd >= 0
        if not under_serve and not child:
            warn_if_sqlite(services, "api")
        parent = os.getppid()
        if settings.api_workers > 1 and not under_serve and not child:

            async def supervised() -> int:
                try:
                    await services.db.migrate()  # once, before the processes start
                finally:
                    await services.db.dispose()
                return await supervise_api_workers(settings)

            code = asyncio.run(supervised())
            if code:
                raise SystemExit(code)
            return

        async def main() -> None:
            try:
                if not child:
                    await services.db.migrate()
                # The API starts and cancels task workflows itself (NICO_TEMPORAL_ADDRESS).
                services.temporal = await connect_with_retry(services)
                if under_serve:
                    await run_api_under_serve(services, parent, listen_fd, loops=not no_loops)
                else:
                    await run_api(services, listen_fd)
            finally:
                await services.db.dispose()

        run_api_loop(main())
