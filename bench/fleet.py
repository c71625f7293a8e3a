"""Fleet benchmark: one bulk power-on of N NVL72 racks on the embedded default.

    .venv/bin/python bench/fleet.py [--sizes 1,10,50 | --full] [--baseline ../other-checkout]

(`make bench` runs it with `--sizes $(FLEET_SIZES)`, default every size, 1,10,50,100,200;
the script's own default is the quicker 1,10,50.)

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
- peak RSS of that process tree (sampled every 0.25 s);
- the slowest answer to one of those polls: how responsive the API stayed meanwhile.

One run per size (a 200-rack run takes minutes). `--baseline DIR` measures another
checkout the same way (its `.venv`, its `nico serve`, the fleet written by its own code),
size by size interleaved with this one, so both rows come from one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from nico import provisioning
from nico.config import Settings
from nico.schemas.inventory import RackCreateRequest
from nico.seed import nvl72_rack, seed_demo
from nico.services import build_services
from nico.store.models import Site
from served import (
    BASE,
    Served,
    Target,
    TreeSampler,
    cpu_seconds,
    data_dir,
    process_tree,
    serve_env,
    serving,
    targets,
    wait_until_up,
)

DEFAULT_SIZES = (1, 10, 50)
FULL_SIZES = (1, 10, 50, 100, 200)
TRAYS_PER_RACK = 35
REQUEST_TIMEOUT = 120.0


@dataclass
class Result:
    label: str
    racks: int
    request_s: float | None  # None = no answer within REQUEST_TIMEOUT
    done_s: float | None  # None = not all finished within the limit
    succeeded: int
    cpu_s: float
    peak_rss: int
    slowest_poll_s: float

    @property
    def trays(self) -> int:
        return self.racks * TRAYS_PER_RACK


async def build_fleet(settings: Settings, racks: int) -> str:
    """Demo site + rack-01, then rack-002..N; returns the site id."""
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


def build_with(target: Target, env: dict[str, str], racks: int) -> str:
    """The fleet written by the target's own code (its schema, its migrations)."""
    out = subprocess.run(
        [str(target.python), __file__, "--build", str(racks)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


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


async def measure(served: Served, site_id: str, racks: int, limit: float) -> Result:
    root = served.process.pid
    async with served.client() as http:
        await wait_until_up(served, http)
        cpu_before = cpu_seconds(process_tree(root))
        started = time.perf_counter()
        request_s: float | None = None
        done_s: float | None = None
        slowest = 0.0
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
                asked = time.perf_counter()
                active = await count_active(http, site_id)
                slowest = max(slowest, time.perf_counter() - asked)
                if active == 0 and request_s is not None:
                    done_s = time.perf_counter() - started
                    break
                await asyncio.sleep(0.25)
            cpu = cpu_seconds(process_tree(root)) - cpu_before
        succeeded = await count_succeeded(http, site_id)
    return Result("", racks, request_s, done_s, succeeded, cpu, sampler.peak, slowest)


def run_size(target: Target, racks: int, limit: float) -> Result:
    with data_dir() as tmp:
        env = serve_env(tmp)
        site_id = build_with(target, env, racks)
        with serving(target, env) as served:
            result = asyncio.run(measure(served, site_id, racks, limit))
    result.label = target.label
    return result


def seconds(value: float | None, limit: float) -> str:
    return f"{value:.1f} s" if value is not None else f"> {limit:.0f} s"


def print_table(results: list[Result], limit: float) -> None:
    print("\nBulk power-on of N NVL72 racks (35 trays each), `nico serve` embedded default,")
    print("SQLite, zero-latency simulator; one run per size; CPU and RSS of the whole")
    print("process tree (API, worker, Temporal dev server)\n")
    header = (
        f"{'code':<8} {'racks':>5} {'trays':>6} {'bulk request':>13} {'all done':>10} "
        f"{'succeeded':>10} {'trays/s':>8} {'CPU ms/tray':>12} {'peak RSS':>9} "
        f"{'slowest poll':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        rate = f"{r.trays / r.done_s:.0f}" if r.done_s else "-"
        print(
            f"{r.label:<8} {r.racks:>5} {r.trays:>6} {seconds(r.request_s, REQUEST_TIMEOUT):>13} "
            f"{seconds(r.done_s, limit):>10} {r.succeeded:>4}/{r.racks:<5} {rate:>8} "
            f"{1000 * r.cpu_s / r.trays:>12.1f} {r.peak_rss / 2**20:>6.0f} MB "
            f"{r.slowest_poll_s:>11.2f} s"
        )


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


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
        # Run by the target's interpreter: write the fleet, print the site id.
        print(asyncio.run(build_fleet(Settings(), args.build)))
        return
    sizes = FULL_SIZES if args.full else args.sizes
    results = []
    for racks in sizes:
        for target in targets(Path(sys.executable), args.baseline):
            results.append(run_size(target, racks, args.timeout))
            print(f"{target.label}: {racks} racks measured", file=sys.stderr, flush=True)
    print_table(results, args.timeout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
