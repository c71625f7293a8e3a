"""Redfish benchmark: the built-in power_on rule against the sushy-tools emulator.

    .venv/bin/python bench/redfish.py [--runs 3] [--baseline ../other-checkout]

35 Compute systems on the sushy-tools emulator (its fake driver, as the tests use it,
through `tests.support.sushy`), each reaching a new power state 0.5 s after the command.
All 35 sit behind one emulator address, so the per-BMC cap (`NICO_BMC_CONCURRENCY`,
default 4) applies to them together (raised, the fake driver loses power changes under
35 concurrent requests). A `nico serve`
subprocess (embedded Temporal, SQLite) gets a rack of those 35 trays through `POST
/rack` (backend redfish), then, per run, measures until `GET /task/{id}` says Succeeded
(polled every 20 ms):

- bulk: `PATCH /rack/{id}/power {"state":"on"}` for the 35 trays;
- one tray: `PATCH /tray/{id}/power {"state":"on"}`;

each from Off (a power_off task, not measured, in between). Median of the runs.
`--baseline DIR` measures another checkout's `nico serve` the same way, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from served import BASE, Target, data_dir, serve_env, serving, targets, wait_until_up

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the emulator's test support
from tests.support.sushy import (
    PASSWORD,
    USERNAME,
    FakeSystem,
    SushyEmulator,
    start_emulator,
)

TRAYS = 35
POWER_DELAY = 0.5


@dataclass
class Result:
    label: str
    bulk: list[float]
    one: list[float]


def rack_body(site_id: str, emulator: SushyEmulator) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8].upper()
    return {
        "siteId": site_id,
        "name": "rack-redfish",
        "backend": "redfish",
        "components": [
            {
                "type": "Compute",
                "name": f"compute-{i:02d}",
                "manufacturer": "NVIDIA",
                "serialNumber": f"{tag}-{i:02d}",
                "bmcs": [
                    {
                        "type": "BmcTypeHost",
                        "ipAddress": emulator.url,
                        "resourceId": f"compute-{i:02d}",
                        "username": USERNAME,
                        "password": PASSWORD,
                    }
                ],
            }
            for i in range(1, TRAYS + 1)
        ],
    }


async def power(http: httpx.AsyncClient, path: str, site_id: str, state: str) -> float:
    """Seconds from the request until the task Succeeded."""
    started = time.perf_counter()
    response = await http.patch(f"{BASE}{path}", json={"siteId": site_id, "state": state})
    response.raise_for_status()
    [task_id] = response.json()["taskIds"]
    while True:
        task = (await http.get(f"{BASE}/task/{task_id}", params={"siteId": site_id})).json()
        if task["status"] in ("Succeeded", "Failed", "Terminated"):
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    if task["status"] != "Succeeded":
        raise SystemExit(f"power {state} on {path} ended {task['status']}: {task['message']}")
    return elapsed


async def drive(target: Target, env: dict[str, str], emulator: SushyEmulator, runs: int) -> Result:
    with serving(target, env) as served:
        async with served.client() as http:
            await wait_until_up(served, http)
            sites = (await http.get(f"{BASE}/site")).json()
            site_id = next(s["id"] for s in sites if s["name"] == "demo-site")
            response = await http.post(f"{BASE}/rack", json=rack_body(site_id, emulator))
            if response.status_code != 201:
                raise SystemExit(f"rack import failed: {response.text[:500]}")
            rack = response.json()
            tray_id = next(c["id"] for c in rack["components"] if c["name"] == "compute-01")
            rack_path, tray_path = f"/rack/{rack['id']}/power", f"/tray/{tray_id}/power"
            result = Result(target.label, [], [])
            await power(http, rack_path, site_id, "on")  # warm-up, not counted
            for _ in range(runs):
                await power(http, rack_path, site_id, "off")
                result.bulk.append(await power(http, rack_path, site_id, "on"))
                await power(http, tray_path, site_id, "off")
                result.one.append(await power(http, tray_path, site_id, "on"))
            return result


def run_target(target: Target, runs: int) -> Result:
    with data_dir() as tmp, tempfile.TemporaryDirectory(prefix="nico-sushy-") as bmc_dir:
        systems = tuple(FakeSystem(f"compute-{i:02d}", power_state="Off") for i in range(1, 36))
        emulator = start_emulator(Path(bmc_dir), systems=systems, power_delay=POWER_DELAY)
        try:
            env = serve_env(tmp)
            return asyncio.run(drive(target, env, emulator, runs))
        finally:
            emulator.stop()


def print_table(runs: int, results: list[Result]) -> None:
    print(f"\nBuilt-in power_on rule over Redfish: sushy-tools emulator, {TRAYS} Compute")
    print(f"systems, {POWER_DELAY} s power delay; request until Succeeded, median of {runs} runs\n")
    header = f"{'code':<8} {f'bulk ({TRAYS} trays)':>16} {'one tray':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.label:<8} {statistics.median(r.bulk):>14.2f} s {statistics.median(r.one):>8.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median)")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout (its .venv) measured the same way"
    )
    args = parser.parse_args()
    results = [run_target(t, args.runs) for t in targets(Path(sys.executable), args.baseline)]
    print_table(args.runs, results)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
