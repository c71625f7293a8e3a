"""A private PostgreSQL cluster that a test may stop and start (outage drills).

Never the shared server on 5432: a drill kills its database, so it gets its own, in a
temporary directory the `postgres` user owns, on a free 127.0.0.1 port. Needs the
PostgreSQL 15 binaries and root (to run them as `postgres`); skips otherwise, fails
under CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nico.config import Settings
from nico.services import Services, build_services
from tests.support.postgres import in_ci

PG_BIN = Path(os.environ.get("NICO_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateCluster:
    """initdb'd once; `stop()` kills it (immediate shutdown, like a crash), `start()`
    brings it back on the same port with the same data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def init(self) -> None:
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off"  # never synchronous_commit=off: a kill would lose commits
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Immediate shutdown: connections drop at once, as when the server dies."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"private PostgreSQL cluster: {reason} (CI=true requires it)", pytrace=False)
    pytest.skip(f"private PostgreSQL cluster: {reason}")


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A running private cluster, removed afterwards (stopped first if still running)."""
    if not (PG_BIN / "initdb").exists():
        _unavailable(f"no PostgreSQL binaries under {PG_BIN}")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        _unavailable("needs root and runuser to run the server as postgres")
    root = Path(tempfile.mkdtemp(prefix="nico-pg-"))
    shutil.chown(root, "postgres", "postgres")
    cluster = PrivateCluster(root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(cluster.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private cluster for one test (import the fixture into the test module)."""
    with private_cluster() as running:
        yield running


@pytest.fixture
async def pg_services(settings: Settings, cluster: PrivateCluster) -> AsyncIterator[Services]:
    """The test's services on the private cluster (migrated)."""
    svc = build_services(settings.model_copy(update={"database_url": cluster.url}))
    await svc.db.migrate()
    yield svc
    await svc.db.dispose()
