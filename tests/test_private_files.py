"""Issue 13 finding 9: the databases next to the 0600 key that decrypts their BMC
passwords are 0600 too, and the embedded Temporal listens only on loopback, on the
ports the settings pin."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from sqlalchemy import text

from nico.config import Settings
from nico.engine.devserver import EmbeddedTemporal
from nico.store.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(directory: Path, pattern: str) -> dict[str, int]:
    """File name -> permission bits of the files matching `pattern`."""
    return {f.name: mode(f) for f in directory.glob(pattern)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nico_db_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    os.umask(0o022)
    path = tmp_path / "data" / "nico.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.migrate()
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
        found = modes(tmp_path / "data", "nico.db*")
        assert set(found) >= {"nico.db", "nico.db-wal", "nico.db-shm"}
        assert found == dict.fromkeys(found, 0o600)
    finally:
        await db.dispose()


async def test_an_older_world_readable_nico_db_is_restricted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "nico.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.dispose()
    assert mode(path) == 0o600


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            if width == 8:
                host = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
            else:
                host = address
            found.add((host, int(port, 16)))
    return found


async def test_embedded_temporal_files_are_owner_only_and_listeners_loopback(
    settings: Settings,
) -> None:
    os.umask(0o022)
    ports = {"port": free_port(), "http": free_port(), "metrics": free_port()}
    pinned = settings.model_copy(
        update={
            "temporal_dev_port": ports["port"],
            "temporal_dev_http_port": ports["http"],
            "temporal_dev_metrics_port": ports["metrics"],
        }
    )
    server = EmbeddedTemporal(pinned)
    await server.start()
    try:
        assert server._process is not None
        listening = listening_ports(server._process.pid)
        assert {("127.0.0.1", p) for p in ports.values()} <= listening
        assert {host for host, _ in listening} == {"127.0.0.1"}
        found = modes(settings.data_dir, "temporal.db*")
        assert "temporal.db" in found
        assert found == dict.fromkeys(found, 0o600)
    finally:
        await server.stop()
