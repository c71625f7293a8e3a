"""`nico api` with `NICO_API_WORKERS` > 1: several API processes on one listening socket.

One Python process answers requests on one core; a host with more cores serves more
requests with more processes. This process binds NICO_HOST:NICO_PORT once (a port in use
fails here, once), migrates the schema once, then starts N `nico api` children that
inherit the socket, so the kernel hands each new connection to one of them. It stops
them on SIGINT/SIGTERM; a child that dies on its own stops the whole set with exit code 1
(a supervisor such as systemd restarts it). A child whose parent disappears stops itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from nico.cli.listen import LISTEN_FD, listening_socket
from nico.cli.supervise import Child, stop_child
from nico.config import Settings

log = logging.getLogger("nico.api")


async def supervise_api_workers(settings: Settings) -> int:
    """Run `settings.api_workers` API processes until SIGINT/SIGTERM (0) or until one
    exits on its own (1)."""
    sock = listening_socket(settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    children: list[Child] = []
    try:
        for n in range(settings.api_workers):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "nico",
                "api",
                LISTEN_FD,
                str(sock.fileno()),
                pass_fds=(sock.fileno(),),
                start_new_session=True,
            )
            children.append(Child(f"API {n + 1}", process))
        log.info(
            "nico api: %d processes on %s:%d", settings.api_workers, settings.host, settings.port
        )
        exits = {asyncio.ensure_future(c.process.wait()): c for c in children}
        stopping = asyncio.ensure_future(stop.wait())
        pending: set[asyncio.Future[Any]] = {*exits, stopping}
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
        dead = [exits[f] for f in done if f in exits]
        for child in dead:
            log.error(
                "the %s process exited with code %s; stopping nico api",
                child.name,
                child.process.returncode,
            )
        return 1 if dead else 0
    finally:
        sock.close()
        await asyncio.gather(*(stop_child(c) for c in children))
