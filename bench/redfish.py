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
`--baseline DIR` measures another checkout's `nico serve` the same way, in the same run:
both are up at once (each with its own emulator) and their runs alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


@dataclass
class Rig:
    """One checkout's `nico serve` with its own emulator and rack, ready to measure."""

    result: Result
    http: httpx.AsyncClient
    site_id: str
    rack_path: str
    tray_path: str


async def set_up(
    stack: contextlib.AsyncExitStack, target: Target, env: dict[str, str], emulator: SushyEmulator
) -> Rig:
    served = stack.enter_context(serving(target, env))
    http = await stack.enter_async_context(served.client())
    await wait_until_up(served, http)
    sites = (await http.get(f"{BASE}/site")).json()
    site_id = next(s["id"] for s in sites if s["name"] == "demo-site")
    response = await http.post(f"{BASE}/rack", json=rack_body(site_id, emulator))
    if response.status_code != 201:
        raise SystemExit(f"rack import failed: {response.text[:500]}")
    rack = response.json()
    tray_id = next(c["id"] for c in rack["components"] if c["name"] == "compute-01")
    rig = Rig(
        Result(target.label, [], []),
        http,
        site_id,
        f"/rack/{rack['id']}/power",
        f"/tray/{tray_id}/power",
    )
    await power(http, rig.rack_path, site_id, "on")  # warm-up, not counted
    return rig


async def drive(
    items: list[tuple[Target, dict[str, str], SushyEmulator]], runs: int
) -> list[Result]:
    """Every checkout up at once, its runs interleaved with the others' (baseline run 1,
    this run 1, baseline run 2, ...): the machine's load changes by the minute, and a
    comparison of two sequential blocks measured the load as much as the code."""
    async with contextlib.AsyncExitStack() as stack:
        rigs = [await set_up(stack, *item) for item in items]
        for _ in range(runs):
            for rig in rigs:
                await power(rig.http, rig.rack_path, rig.site_id, "off")
                rig.result.bulk.append(await power(rig.http, rig.rack_path, rig.site_id, "on"))
                await power(rig.http, rig.tray_path, rig.site_id, "off")
                rig.result.one.append(await power(rig.http, rig.tray_path, rig.site_id, "on"))
        return [rig.result for rig in rigs]


def run_targets(chosen: list[Target], runs: int) -> list[Result]:
    with contextlib.ExitStack() as stack:
        items = []
        for target in chosen:
            tmp = stack.enter_context(data_dir())
            bmc_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="nico-sushy-"))
            systems = tuple(
                FakeSystem(f"compute-{i:02d}", power_state="Off") for i in range(1, TRAYS + 1)
            )
            emulator = start_emulator(Path(bmc_dir), systems=systems, power_delay=POWER_DELAY)
            stack.callback(emulator.stop)
            items.append((target, serve_env(tmp), emulator))
        return asyncio.run(drive(items, runs))


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
    results = run_targets(targets(Path(sys.executable), args.baseline), args.runs)
    print_table(args.runs, results)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
