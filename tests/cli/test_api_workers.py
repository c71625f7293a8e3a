"""`NICO_API_WORKERS=2 nico api`: two API processes answer on one port, SIGTERM stops
them all, and a process that dies stops `nico api` with exit code 1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from temporalio.testing import WorkflowEnvironment

from nico.auth.tokens import mint_dev_token
from tests.support.temporal import dev_server_address

KEY = "api-workers-" + "k" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_children(pid: int) -> list[int]:
    """The API processes `nico api` started (they carry the inherited socket's fd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"--listen-fd" in argv:
            found.append(int(entry.name))
    return found


def start_api(tmp_path: Path, temporal: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NICO_DATA_DIR": str(tmp_path / "data"),
        "NICO_PORT": str(port),
        "NICO_API_WORKERS": "2",
        "NICO_AUTH_DEV_KEY": KEY,
        "NICO_SECRET_KEY": Fernet.generate_key().decode(),
        "NICO_TEMPORAL_ADDRESS": temporal,
        "NICO_LOG_LEVEL": "INFO",
    }
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "nico", "api"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def wait_answering(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    token = mint_dev_token(KEY, "demo", ["PROVIDER_ADMIN"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/v2/org/demo/nico/infrastructure-provider/current",
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code in (200, 400):  # answered (no provider yet is a 400)
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("nico api did not answer: " + log.read_text()[-2000:])


async def test_two_api_processes_share_the_port_and_stop_together(
    tmp_path: Path, temporal_dev_env: WorkflowEnvironment
) -> None:
    await asyncio.to_thread(shared_port, tmp_path, dev_server_address(temporal_dev_env))


async def test_an_api_process_that_dies_stops_nico_api(
    tmp_path: Path, temporal_dev_env: WorkflowEnvironment
) -> None:
    await asyncio.to_thread(one_dies, tmp_path, dev_server_address(temporal_dev_env))


def shared_port(tmp_path: Path, temporal: str) -> None:
    port = free_port()
    process = start_api(tmp_path, temporal, port)
    try:
        wait_answering(process, port, tmp_path / "api.log")
        kids = api_children(process.pid)
        assert len(kids) == 2, kids
        for _ in range(20):  # new connections each: the kernel spreads them
            assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(40)
    assert process.returncode == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in kids)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/openapi.json")


def one_dies(tmp_path: Path, temporal: str) -> None:
    port = free_port()
    process = start_api(tmp_path, temporal, port)
    try:
        wait_answering(process, port, tmp_path / "api.log")
        first, second = api_children(process.pid)
        os.kill(first, signal.SIGKILL)
        process.wait(40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    assert "exited with code -9; stopping nico api" in (tmp_path / "api.log").read_text()
    assert not Path(f"/proc/{second}").exists()
