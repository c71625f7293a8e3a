"""What the fleet and Redfish benchmarks share: a `nico serve` subprocess of some checkout
on a fresh data dir and free ports, an HTTP client with a dev token for it, and the CPU
and memory of its process tree read from /proc.

A `Target` is a checkout's virtualenv interpreter; its `nico` lies beside it, so the
same bench script measures this checkout and a baseline (`--baseline DIR`) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from nico.auth.tokens import mint_dev_token

BASE = "/v2/org/demo/nico"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STARTUP_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Target:
    """Which code runs: a checkout's virtualenv interpreter (its `nico` lies beside it)."""

    label: str
    python: Path

    def serve_command(self) -> list[str]:
        return [str(self.python.parent / "nico"), "serve"]


def targets(this: Path, baseline: Path | None) -> list[Target]:
    """This checkout, preceded by the baseline checkout's `.venv` when given."""
    out = [Target("this", this)]
    if baseline is not None:
        out.insert(0, Target("baseline", baseline.resolve() / ".venv/bin/python"))
    return out


@dataclass
class Served:
    """A running `nico serve`: its environment, process and a dev token for org demo."""

    env: dict[str, str]
    process: subprocess.Popen[bytes]
    token: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['NICO_PORT']}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )


def serve_env(data_dir: str, **extra: str) -> dict[str, str]:
    """Environment of a `nico serve` on `data_dir` with free ports and its own keys."""
    env = {
        **os.environ,
        "NICO_DATA_DIR": data_dir,
        "NICO_PORT": str(free_port()),
        "NICO_TEMPORAL_DEV_PORT": str(free_port()),
        "NICO_SIM_LATENCY": "0",
        "NICO_SECRET_KEY": Fernet.generate_key().decode(),
        "NICO_AUTH_DEV_KEY": "bench-" + uuid.uuid4().hex,
        "NICO_LOG_LEVEL": "WARNING",
        # Measured work only: no state sync reading trays in the background.
        "NICO_STATE_SYNC_INTERVAL": "0",
        **extra,
    }
    env.pop("NICO_TEMPORAL_ADDRESS", None)
    env.pop("NICO_DATABASE_URL", None)
    return env


@contextlib.contextmanager
def data_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="nico-bench-") as tmp:
        yield tmp


@contextlib.contextmanager
def serving(target: Target, env: dict[str, str]) -> Iterator[Served]:
    """`nico serve` of `target` until the block ends (then SIGTERM, as systemd stops it)."""
    with open(Path(env["NICO_DATA_DIR"]) / "serve.log", "wb") as log:
        process = subprocess.Popen(
            target.serve_command(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            token = mint_dev_token(env["NICO_AUTH_DEV_KEY"], "demo", ["PROVIDER_ADMIN"])
            yield Served(env, process, token)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def wait_until_up(served: Served, http: httpx.AsyncClient) -> None:
    """Until the API answers an authenticated request."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            log = Path(served.env["NICO_DATA_DIR"]) / "serve.log"
            raise SystemExit(f"nico serve exited: {log.read_text()[-2000:]}")
        try:
            if (await http.get(f"{BASE}/site")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise SystemExit(f"nico serve did not answer within {STARTUP_SECONDS:.0f} s")


# --- the process tree, from /proc ------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(root: int) -> list[int]:
    """`root` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes, with their waited-for children's."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:  # utime, stime, cutime, cstime (stat fields 14-17)
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except OSError:
            continue
    return total


class TreeSampler:
    """Peak RSS of the tree under `root`, sampled every 0.25 s in a thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(process_tree(self.root)))
            self._stop.wait(0.25)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
