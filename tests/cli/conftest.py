"""Fixtures for CLI tests: the real app served over HTTP for commands to talk to."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from nico.api.app import create_app
from nico.config import Settings
from nico.services import Services, build_services
from tests.support.postgres import run_blocking


@pytest.fixture
def live_server(settings: Settings) -> Iterator[tuple[str, Services]]:
    """The real app under uvicorn on a free 127.0.0.1 port, in its own thread and loop."""
    services = build_services(settings, create_keys=True)
    run_blocking(services.db.migrate())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), log_level="warning", lifespan="off")
    )

    def serve() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{port}", services
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        run_blocking(services.db.dispose())
