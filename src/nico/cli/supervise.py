"""`nico serve`'s process layout: the worker in one process, the API and the background
loops in another (NICO_API_WORKERS API processes on one socket, the loops in the first),
the embedded Temporal server in a third, all started and stopped here.

Why processes: one event loop running both the API and a saturated worker answered a
100-rack request after minutes, because every request waited behind workflow and
activity work. Separate processes keep the API answering whatever the worker does (and
give the two a core each). They share the data dir (SQLite, keys) and Temporal, exactly
like `nico api` and `nico worker` in a split deployment.

The children run in sessions of their own, so a Ctrl-C in the terminal reaches only this
process, which stops them in order: the API (no new requests), then the worker (it
finishes or abandons its activities; Temporal retries them), then Temporal. A child that
dies on its own is reported and stops `nico serve` with exit code 1 (a supervisor such
as systemd then restarts the whole set). A child whose parent disappears (kill -9 of
`nico serve`) stops itself (`watch_parent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from nico.cli.listen import LISTEN_FD, listening_socket
from nico.config import Settings
from nico.engine.devserver import EmbeddedTemporal

log = logging.getLogger("nico.serve")

# How long a child gets to stop after SIGTERM before it is killed.
CHILD_STOP_TIMEOUT = 20.0
# How often a child checks that `nico serve` is still its parent.
PARENT_CHECK_INTERVAL = 1.0
# How long an orphaned worker gets to stop before it exits (`worker_orphaned`).
ORPHAN_GRACE = 3.0
UNDER_SERVE = "--under-serve"
# An API process of `nico serve` that leaves the background loops to the first one.
NO_LOOPS = "--no-loops"


@dataclass
class Child:
    """One supervised process and what to call it in messages."""

    name: str
    process: asyncio.subprocess.Process


async def spawn(
    name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
) -> Child:
    """`python -m nico <args>` with this interpreter, in a session of its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nico", *args, env=env, start_new_session=True, pass_fds=pass_fds
    )
    return Child(name, process)


async def spawn_api(settings: Settings, env: dict[str, str]) -> list[Child]:
    """The API processes: one binding NICO_HOST:NICO_PORT itself, or (NICO_API_WORKERS
    > 1) that many on one socket bound here, the kernel spreading connections over them.
    Only the first runs the background loops (queue sweep, reconciler)."""
    if settings.api_workers == 1:
        return [await spawn("API", ["api", UNDER_SERVE], env)]
    sock = listening_socket(settings.host, settings.port)
    fd = sock.fileno()
    try:
        return [
            await spawn(
                f"API {n + 1}",
                ["api", UNDER_SERVE, LISTEN_FD, str(fd), *([NO_LOOPS] if n else [])],
                env,
                pass_fds=(fd,),
            )
            for n in range(settings.api_workers)
        ]
    finally:
        sock.close()  # the children hold it


async def stop_child(child: Child) -> None:
    """SIGTERM, wait, then SIGKILL; a child that already exited is left alone."""
    process = child.process
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), CHILD_STOP_TIMEOUT)
    except TimeoutError:
        log.warning(
            "the %s process did not stop within %.0fs; killing it", child.name, CHILD_STOP_TIMEOUT
        )
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def temporal_for_children(settings: Settings) -> AsyncIterator[dict[str, str]]:
    """The environment the children need to reach Temporal: the configured server, or
    the embedded one started (and stopped) here."""
    if settings.temporal_address:
        yield {}
        return
    embedded = EmbeddedTemporal(settings)
    client = await embedded.start()
    del client  # the children connect themselves
    try:
        yield {"NICO_TEMPORAL_ADDRESS": embedded.address}
    finally:
        await embedded.stop()


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


async def wait_listening(host: str, port: int) -> None:
    """Until something accepts connections on host:port."""
    while True:
        try:
            _, writer = await asyncio.open_connection(_connect_host(host), port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def supervise(settings: Settings, on_ready: Callable[[], None] | None = None) -> int:
    """Run Temporal (unless configured), the worker and the API until SIGINT/SIGTERM
    (exit code 0) or until a child exits on its own (exit code 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with temporal_for_children(settings) as extra:
        env = {**os.environ, **extra}
        children = [
            *await spawn_api(settings, env),
            await spawn("worker", ["worker", UNDER_SERVE], env),
        ]
        exits = {asyncio.ensure_future(c.process.wait()): c for c in children}
        stopping = asyncio.ensure_future(stop.wait())
        ready = asyncio.ensure_future(wait_listening(settings.host, settings.port))
        pending: set[asyncio.Future[Any]] = {*exits, stopping, ready}
        code = 0
        try:
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if ready in done and on_ready is not None:
                    on_ready()
                dead = [exits[f] for f in done if f in exits]
                if dead:
                    for child in dead:
                        log.error(
                            "the %s process exited with code %s; stopping nico serve",
                            child.name,
                            child.process.returncode,
                        )
                    code = 1
                    break
                if stopping in done:
                    break
        finally:
            for future in pending:
                future.cancel()
            for child in children:  # API first: no new requests while the worker stops
                await stop_child(child)
    return code


async def worker_orphaned(parent: int) -> None:
    """`watch_parent` for the worker of `nico serve`: once `nico serve` is gone, so is
    the Temporal server it embedded (the kernel stops it with its parent), and a
    graceful worker shutdown would wait for that server for half a minute. The process
    gets ORPHAN_GRACE seconds to stop, then exits; its activities in flight are retried
    elsewhere, as after any worker crash (their heartbeats and the ledger)."""
    await watch_parent(parent)
    timer = threading.Timer(ORPHAN_GRACE, os._exit, args=(1,))
    timer.daemon = True
    timer.start()


async def watch_parent(parent: int) -> None:
    """Return once this process's parent is no longer `parent` (it died and the process
    was re-parented): a child of `nico serve` must not outlive it."""
    while True:
        if os.getppid() != parent:
            break
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    log.error("nico serve (pid %d) is gone; stopping", parent)
