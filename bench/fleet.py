"""Fleet benchmark: one bulk power-on of N NVL72 racks on the embedded default.

    .venv/bin/python bench/fleet.py [--sizes 1,10,50 | --full] [--baseline ../other-checkout]

(`make bench` runs it with `--sizes $(FLEET_SIZES)`, default 1,10,50;
`make bench FLEET_SIZES=1,10,50,100,200` for the full table.)

For each size a fresh data dir gets the demo site and N simulated racks of 35 trays
(written through the same store code `POST /rack` uses), then `nico serve` starts as a
subprocess (embedded Temporal dev server, SQLite, `NICO_SIM_LATENCY=0`) and the bench,
in its own process, sends one `PATCH /rack/power {"siteId":…,"all":true,"state":"on"}`
and polls `GET /task?activeOnly=true` every 0.25 s until nothing is left. It prints:

- bulk request: until the answer with every task id came back;
- all done: from the request until no task of the site is active (and how many ended
  Succeeded);
- trays/s over that time; CPU-seconds per tray (user + system of `nico serve` and every
  process under it, the Temporal server included, from /proc, over that time);
- peak RSS of that process tree (sampled every 0.25 s).

One run per size (a 200-rack run takes minutes). `--baseline DIR` measures another
checkout the same way (its `.venv`, its `nico serve`, the fleet written by its own code),
size by size interleaved with this one, so both rows come from one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from nico import provisioning
from nico.auth.tokens import mint_dev_token
from nico.config import Settings
from nico.schemas.inventory import RackCreateRequest
from nico.seed import nvl72_rack, seed_demo
from nico.services import build_services
from nico.store.models import Site

BASE = "/v2/org/demo/nico"
DEFAULT_SIZES = (1, 10, 50)
FULL_SIZES = (1, 10, 50, 100, 200)
TRAYS_PER_RACK = 35
REQUEST_TIMEOUT = 120.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the process tree, from /proc ------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes (children that exited and were waited for are in
    their parent's cutime/cstime)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[11..14] = utime, stime, cutime, cstime (stat fields 14-17)
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


# --- one size ---------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    racks: int
    request_s: float | None  # None = no answer within REQUEST_TIMEOUT
    done_s: float | None  # None = not all finished within the timeout
    succeeded: int
    cpu_s: float
    peak_rss: int

    @property
    def trays(self) -> int:
        return self.racks * TRAYS_PER_RACK


async def build_fleet(settings: Settings, racks: int) -> str:
    """Demo site + rack-01, then rack-02..N; returns the site id."""
    services = build_services(settings, create_keys=True)
    await services.db.migrate()
    demo = await seed_demo(services)
    async with services.db.session() as session:
        site = await session.get(Site, demo.site_id)
        assert site is not None
        for i in range(2, racks + 1):
            body = nvl72_rack(
                f"rack-{i:03d}", site_id=str(site.id), serial_prefix=f"FLEET{i:04d}", tag=i
            )
            await provisioning.import_rack(
                session, site, RackCreateRequest.model_validate(body), services.secrets
            )
    await services.db.dispose()
    return str(demo.site_id)


@dataclass(frozen=True)
class Target:
    """Which code runs: a checkout's virtualenv interpreter (its `nico` lies beside it)."""

    label: str
    python: Path

    def serve_command(self) -> list[str]:
        return [str(self.python.parent / "nico"), "serve"]

    def build_fleet(self, env: dict[str, str], racks: int) -> str:
        """The fleet written by the target's own code (its schema, its migrations)."""
        out = subprocess.run(
            [str(self.python), __file__, "--build", str(racks)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]


async def wait_until_up(
    http: httpx.AsyncClient, site_id: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"nico serve exited with code {process.returncode}")
        try:
            response = await http.get(f"{BASE}/task", params={"siteId": site_id, "pageSize": 1})
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise SystemExit("nico serve did not answer within 90 s")


async def count_active(http: httpx.AsyncClient, site_id: str) -> int:
    response = await http.get(
        f"{BASE}/task", params={"siteId": site_id, "activeOnly": "true", "pageSize": 1}
    )
    response.raise_for_status()
    return int(json.loads(response.headers["X-Pagination"])["total"])


async def count_succeeded(http: httpx.AsyncClient, site_id: str) -> int:
    succeeded, page = 0, 1
    while True:
        response = await http.get(
            f"{BASE}/task", params={"siteId": site_id, "pageSize": 100, "pageNumber": page}
        )
        response.raise_for_status()
        tasks = response.json()
        succeeded += sum(t["status"] == "Succeeded" for t in tasks)
        if len(tasks) < 100:
            return succeeded
        page += 1


async def measure(
    http: httpx.AsyncClient, site_id: str, racks: int, root: int, limit: float
) -> Result:
    pids = process_tree(root)
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    request_s: float | None = None
    done_s: float | None = None
    with TreeSampler(root) as sampler:
        try:
            response = await http.patch(
                f"{BASE}/rack/power",
                json={"siteId": site_id, "all": True, "state": "on"},
                timeout=REQUEST_TIMEOUT,
            )
            request_s = time.perf_counter() - started
            response.raise_for_status()
            if len(response.json()["taskIds"]) != racks:
                raise SystemExit(f"expected {racks} task ids: {response.text[:300]}")
        except httpx.TimeoutException:
            pass
        while time.perf_counter() - started < limit:
            if await count_active(http, site_id) == 0 and request_s is not None:
                done_s = time.perf_counter() - started
                break
            await asyncio.sleep(0.25)
        cpu = cpu_seconds(process_tree(root)) - cpu_before
    succeeded = await count_succeeded(http, site_id)
    return Result("", racks, request_s, done_s, succeeded, cpu, sampler.peak)


async def drive(
    port: str,
    token: str,
    site_id: str,
    racks: int,
    root: int,
    limit: float,
    process: subprocess.Popen[bytes],
) -> Result:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as http:
        await wait_until_up(http, site_id, process)
        return await measure(http, site_id, racks, root, limit)


def run_size(target: Target, racks: int, limit: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="nico-fleet-") as tmp:
        dev_key = "fleet-" + uuid.uuid4().hex
        env = {
            **os.environ,
            "NICO_DATA_DIR": tmp,
            "NICO_PORT": str(free_port()),
            "NICO_TEMPORAL_DEV_PORT": str(free_port()),
            "NICO_SIM_LATENCY": "0",
            "NICO_SECRET_KEY": Fernet.generate_key().decode(),
            "NICO_AUTH_DEV_KEY": dev_key,
            "NICO_LOG_LEVEL": "WARNING",
        }
        env.pop("NICO_TEMPORAL_ADDRESS", None)
        env.pop("NICO_DATABASE_URL", None)
        site_id = target.build_fleet(env, racks)
        token = mint_dev_token(dev_key, "demo", ["PROVIDER_ADMIN"])
        with open(Path(tmp) / "serve.log", "wb") as log:
            process = subprocess.Popen(
                target.serve_command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                result = asyncio.run(
                    drive(env["NICO_PORT"], token, site_id, racks, process.pid, limit, process)
                )
                result.label = target.label
                return result
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def seconds(value: float | None, limit: float) -> str:
    return f"{value:.1f} s" if value is not None else f"> {limit:.0f} s"


def print_table(results: list[Result], timeout: float) -> None:
    print("\nBulk power-on of N NVL72 racks (35 trays each), `nico serve` embedded default,")
    print("SQLite, zero-latency simulator; one run per size; CPU and RSS of the whole")
    print("process tree (API, worker, Temporal dev server)\n")
    header = (
        f"{'code':<8} {'racks':>5} {'trays':>6} {'bulk request':>13} {'all done':>10} "
        f"{'succeeded':>10} "
        f"{'trays/s':>8} {'CPU ms/tray':>12} {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        rate = f"{r.trays / r.done_s:.0f}" if r.done_s else "-"
        print(
            f"{r.label:<8} {r.racks:>5} {r.trays:>6} {seconds(r.request_s, REQUEST_TIMEOUT):>13} "
            f"{seconds(r.done_s, timeout):>10} {r.succeeded:>4}/{r.racks:<5} {rate:>8} "
            f"{1000 * r.cpu_s / r.trays:>12.1f} {r.peak_rss / 2**20:>6.0f} MB"
        )


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def build_main(racks: int) -> None:
    """`--build N` (run by the target's interpreter): write the fleet, print the site id."""
    settings = Settings()
    print(asyncio.run(build_fleet(settings, racks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=DEFAULT_SIZES,
        help="comma-separated rack counts (default 1,10,50)",
    )
    parser.add_argument(
        "--full", action="store_true", help=f"every size: {','.join(map(str, FULL_SIZES))}"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for all tasks per size"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (its .venv) measured the same way, size by size, interleaved",
    )
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        build_main(args.build)
        return
    sizes = FULL_SIZES if args.full else args.sizes
    targets = [Target("this", Path(sys.executable))]
    if args.baseline is not None:
        targets.insert(0, Target("baseline", args.baseline.resolve() / ".venv/bin/python"))
    results = []
    for racks in sizes:
        for target in targets:
            results.append(run_size(target, racks, args.timeout))
            print(f"{target.label}: {racks} racks measured", file=sys.stderr, flush=True)
    print_table(results, args.timeout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
