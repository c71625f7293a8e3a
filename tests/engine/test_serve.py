"""`nico serve` on a fresh data dir: embedded Temporal, worker and API come up (the worker
and the API in processes of their own), a rack powers on over HTTP, Ctrl-C and SIGTERM
stop everything, the Temporal server process included, and a child that dies stops
`nico serve` with exit code 1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.temporal]

NICO = Path(sys.executable).parent / "nico"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(NICO), "serve"], env=env, stdout=out, stderr=out)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def serve_env(tmp_path: Path, api_port: int, temporal_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "NICO_DATA_DIR": str(tmp_path / "data"),
        "NICO_PORT": str(api_port),
        "NICO_TEMPORAL_DEV_PORT": str(temporal_port),
        "NICO_SIM_LATENCY": "0",
        "NICO_LOG_LEVEL": "WARNING",
    }
    env.pop("NICO_TEMPORAL_ADDRESS", None)
    env.pop("NICO_DATABASE_URL", None)
    return env


def read_log(log: Path) -> str:
    return log.read_text()


async def wait_until_up(process: subprocess.Popen[bytes], log: Path, api_port: int) -> str:
    for _ in range(300):
        text = read_log(log)
        if "export TOKEN=" in text and listening(api_port):
            return text
        assert process.poll() is None, text
        await asyncio.sleep(0.1)
    pytest.fail("nico serve did not come up: " + read_log(log)[-2000:])


async def assert_closed(port: int) -> None:
    for _ in range(50):
        if not listening(port):
            return
        await asyncio.sleep(0.1)
    assert not listening(port)


async def test_serve_runs_a_power_task_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, temporal_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    process = start_serve(serve_env(tmp_path, api_port, temporal_port), log)
    try:
        text = await wait_until_up(process, log, api_port)
        token = re.search(r"export TOKEN=(\S+)", text)
        site = re.search(r"site id: (\S+)", text)
        assert token and site
        assert listening(temporal_port)
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        base = f"http://127.0.0.1:{api_port}/v2/org/demo/nico"
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            racks = (await http.get("/rack", params={"siteId": site.group(1)})).json()
            response = await http.patch(
                f"/rack/{racks[0]['id']}/power", json={"siteId": site.group(1), "state": "on"}
            )
            assert response.status_code == 200, response.text
            task_id = response.json()["taskIds"][0]
            for _ in range(300):
                task = (await http.get(f"/task/{task_id}", params={"siteId": site.group(1)})).json()
                if task["status"] not in ("Pending", "Running"):
                    break
                await asyncio.sleep(0.1)
            # /metrics adds up the children: the API's request counts, the worker's.
            scrape = (await http.get(f"http://127.0.0.1:{api_port}/metrics")).text
        assert task["status"] == "Succeeded", task
        assert [s["status"] for s in task["report"]["stages"]] == ["completed"] * 3
        assert re.search(r'nico_http_requests_total\{[^}]*route="[^"]*/rack/\{id\}/power"', scrape)
        assert re.search(
            r'nico_tasks_finished_total\{operation="PowerControl",status="Succeeded"\} 1\.0', scrape
        ), scrape
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("nico serve ignored Ctrl-C: " + log.read_text()[-2000:])
    assert process.returncode == 0
    await assert_closed(temporal_port)  # the embedded Temporal server went with it
    assert (tmp_path / "data" / "temporal.db").exists()


def children(pid: int) -> dict[str, int]:
    """`nico serve`'s child processes by what they run: api, worker, temporal."""
    out: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        words = [a.decode() for a in argv if a]
        if "api" in words and "--under-serve" in words:
            out["api"] = int(entry.name)
        elif "worker" in words and "--under-serve" in words:
            out["worker"] = int(entry.name)
        elif "start-dev" in words:
            out["temporal"] = int(entry.name)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_sigterm_stops_the_embedded_temporal_server_too(tmp_path: Path) -> None:
    # systemd and Kubernetes stop services with SIGTERM, not Ctrl-C.
    api_port, temporal_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    process = start_serve(serve_env(tmp_path, api_port, temporal_port), log)
    try:
        await wait_until_up(process, log, api_port)
        assert listening(temporal_port)
        # The API (with the background loops) and the worker run in processes of their own.
        kids = children(process.pid)
        assert set(kids) == {"api", "worker", "temporal"}, kids
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("nico serve ignored SIGTERM: " + log.read_text()[-2000:])
    assert process.returncode == 0
    await assert_closed(temporal_port)
    await assert_closed(api_port)


async def test_a_child_that_dies_stops_serve_with_exit_code_1(tmp_path: Path) -> None:
    api_port, temporal_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    process = start_serve(serve_env(tmp_path, api_port, temporal_port), log)
    try:
        await wait_until_up(process, log, api_port)
        kids = children(process.pid)
        os.kill(kids["worker"], signal.SIGKILL)
        process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("nico serve kept running without its worker: " + log.read_text()[-2000:])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    assert "the worker process exited with code -9; stopping nico serve" in log.read_text()
    await assert_closed(api_port)
    await assert_closed(temporal_port)
    assert not alive(kids["api"]) and not alive(kids["temporal"])


def api_processes(pid: int) -> list[list[str]]:
    """The argv of each API process `nico serve` started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "api" in argv:
            found.append([*argv, entry.name])
    return found


async def test_api_workers_run_several_api_processes_under_serve(tmp_path: Path) -> None:
    api_port, temporal_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    env = {**serve_env(tmp_path, api_port, temporal_port), "NICO_API_WORKERS": "2"}
    process = start_serve(env, log)
    try:
        text = await wait_until_up(process, log, api_port)
        apis = api_processes(process.pid)
        assert len(apis) == 2, apis
        assert all("--listen-fd" in argv for argv in apis), apis
        # One runs the queue sweep and the reconciler; two would promote tasks twice.
        assert sorted("--no-loops" in argv for argv in apis) == [False, True], apis
        token = re.search(r"export TOKEN=(\S+)", text)
        site = re.search(r"site id: (\S+)", text)
        assert token and site
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        url = f"http://127.0.0.1:{api_port}/v2/org/demo/nico/task"
        for _ in range(20):  # a new connection each: the kernel spreads them
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                listed = await http.get(url, params={"siteId": site.group(1)})
            assert listed.status_code == 200, listed.text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("nico serve ignored SIGTERM: " + log.read_text()[-2000:])
    assert process.returncode == 0, read_log(log)[-2000:]
    await assert_closed(api_port)
    assert not any(alive(int(argv[-1])) for argv in apis)


async def test_a_killed_serve_takes_the_embedded_temporal_server_with_it(tmp_path: Path) -> None:
    """kill -9 of `nico serve` runs none of its shutdown code; the Temporal dev server
    it started (in a session of its own) used to live on, holding its port and
    temporal.db. The kernel now stops it with its parent, and the worker, which would
    wait for that server to shut down gracefully, exits after a short grace."""
    api_port, temporal_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    process = start_serve(serve_env(tmp_path, api_port, temporal_port), log)
    try:
        await wait_until_up(process, log, api_port)
        kids = children(process.pid)
        assert "temporal" in kids, kids
    finally:
        process.kill()
        process.wait()
    for _ in range(100):  # within 10 s (the worker gets a few to stop)
        if not any(alive(pid) for pid in kids.values()):
            break
        await asyncio.sleep(0.1)
    assert not alive(kids["temporal"]), "the Temporal server outlived a killed nico serve"
    await assert_closed(temporal_port)
    assert not alive(kids["api"]) and not alive(kids["worker"])
