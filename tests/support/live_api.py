"""The API served over real HTTP by uvicorn in a background thread, for clients that
speak HTTP themselves (schemathesis, a generated client).

Services are built inside the server thread's own event loop (the database engine
belongs to the loop that made it). API-only, as `nico api` runs: no Temporal client,
so operations leave their tasks Pending.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from nico.api.app import create_app
from nico.config import Settings
from nico.seed import seed_demo
from nico.services import build_services


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    site_id: uuid.UUID
    rack_id: uuid.UUID


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_api(settings: Settings) -> Iterator[LiveApi]:
    """Serve the demo inventory on a free loopback port until the block ends."""
    port = _free_port()
    ready = threading.Event()
    found: dict[str, uuid.UUID] = {}
    server: list[uvicorn.Server] = []
    failure: list[BaseException] = []

    async def serve() -> None:
        services = build_services(settings)
        try:
            await services.db.migrate()
            demo = await seed_demo(services)
            found.update(site=demo.site_id, rack=demo.rack_id)
            config = uvicorn.Config(
                create_app(services), host="127.0.0.1", port=port, log_level="warning"
            )
            server.append(uvicorn.Server(config))
            serving = asyncio.create_task(server[0].serve())
            # uvicorn offers a flag, not an event, for "listening".
            while not server[0].started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            ready.set()
            await serving
        finally:
            await services.db.dispose()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test thread
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="live-api", daemon=True)
    thread.start()
    ready.wait(60)
    if failure or not server or not server[0].started:
        raise RuntimeError(f"the API did not start: {failure}")
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", found["site"], found["rack"])
    finally:
        server[0].should_exit = True
        thread.join(30)
