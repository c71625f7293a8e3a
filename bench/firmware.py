"""Firmware benchmark: the built-in upgrade rule over Redfish, and a same-version request.

    .venv/bin/python bench/firmware.py [--runs 3] [--trays 35] [--baseline ../other-checkout]

35 (`--trays`) Compute systems on the sushy-tools emulator (one address, so the per-BMC cap applies
to them together), each firmware update taking `UPDATE_SECONDS`. A `nico serve`
subprocess (embedded Temporal, SQLite, no state sync) gets a rack of those trays in the
demo site, whose catalog offers 1.0.0 (what the systems run) and 1.1.0. Per run,
measured until `GET /task/{id}` says Succeeded (polled every 20 ms), with the emulator's
request and SimpleUpdate counts:

- upgrade: `PATCH /rack/{id}/firmware {"version": "1.1.0"}` from 1.0.0;
- same version: the same request again, every tray already at 1.1.0 (since
  overrideVersionCheck: skipped after one inventory read; before: reflashed);

then a downgrade back to 1.0.0 (not measured). Median of the runs. `--baseline DIR`
measures another checkout's `nico serve` the same way, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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

UPDATE_SECONDS = 1.0


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)

    def add(self, seconds: float, requests: int, updates: int) -> None:
        self.seconds.append(seconds)
        self.requests.append(requests)
        self.updates.append(updates)


@dataclass
class Result:
    label: str
    upgrade: Measured = field(default_factory=Measured)
    same: Measured = field(default_factory=Measured)


def rack_body(site_id: str, emulator: SushyEmulator, trays: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8].upper()
    return {
        "siteId": site_id,
        "name": "rack-firmware",
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
            for i in range(1, trays + 1)
        ],
    }


async def firmware(http: httpx.AsyncClient, path: str, site_id: str, body: dict[str, Any]) -> float:
    """Seconds from the request until the task Succeeded."""
    started = time.perf_counter()
    response = await http.patch(f"{BASE}{path}", json={"siteId": site_id, **body})
    if response.status_code != 200:
        raise SystemExit(f"firmware {body} refused: {response.text[:500]}")
    [task_id] = response.json()["taskIds"]
    while True:
        task = (await http.get(f"{BASE}/task/{task_id}", params={"siteId": site_id})).json()
        if task["status"] in ("Succeeded", "Failed", "Terminated"):
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    if task["status"] != "Succeeded":
        raise SystemExit(f"firmware {body} ended {task['status']}: {task['message']}")
    return elapsed


async def measured(
    emulator: SushyEmulator,
    into: Measured,
    http: httpx.AsyncClient,
    path: str,
    site_id: str,
    body: dict[str, Any],
) -> None:
    emulator.reset_counters()
    updates = len(emulator.updates())
    seconds = await firmware(http, path, site_id, body)
    stats = emulator.stats()
    into.add(seconds, int(stats["requests"]), len(stats["updates"]) - updates)


async def drive(
    target: Target, env: dict[str, str], emulator: SushyEmulator, runs: int, trays: int
) -> Result:
    with serving(target, env) as served:
        async with served.client() as http:
            await wait_until_up(served, http)
            sites = (await http.get(f"{BASE}/site")).json()
            site_id = next(s["id"] for s in sites if s["name"] == "demo-site")
            response = await http.post(f"{BASE}/rack", json=rack_body(site_id, emulator, trays))
            if response.status_code != 201:
                raise SystemExit(f"rack import failed: {response.text[:500]}")
            path = f"/rack/{response.json()['id']}/firmware"
            result = Result(target.label)
            up, down = {"version": "1.1.0"}, {"version": "1.0.0", "operationCode": "downgrade"}
            await firmware(http, path, site_id, up)  # warm-up, not counted
            await firmware(http, path, site_id, down)
            for _ in range(runs):
                await measured(emulator, result.upgrade, http, path, site_id, up)
                await measured(emulator, result.same, http, path, site_id, up)
                await firmware(http, path, site_id, down)
            return result


def run_target(target: Target, runs: int, trays: int) -> Result:
    with data_dir() as tmp, tempfile.TemporaryDirectory(prefix="nico-sushy-") as bmc_dir:
        systems = tuple(
            FakeSystem(f"compute-{i:02d}", power_state="On") for i in range(1, trays + 1)
        )
        emulator = start_emulator(Path(bmc_dir), systems=systems, firmware_duration=UPDATE_SECONDS)
        try:
            return asyncio.run(drive(target, serve_env(tmp), emulator, runs, trays))
        finally:
            emulator.stop()


def print_table(runs: int, trays: int, results: list[Result]) -> None:
    print(f"\nBuilt-in firmware upgrade rule over Redfish: sushy-tools emulator, {trays} Compute")
    print(f"systems, {UPDATE_SECONDS} s per update; request until Succeeded, median of {runs} runs")
    print("(requests: every request the emulator answered during the task)\n")
    header = (
        f"{'code':<9} {'upgrade 1.0.0->1.1.0':>21} {'requests':>9} {'updates':>8}"
        f" {'same version again':>19} {'requests':>9} {'updates':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        u, s = r.upgrade, r.same
        print(
            f"{r.label:<9} {statistics.median(u.seconds):>19.2f} s"
            f" {statistics.median(u.requests):>9.0f} {statistics.median(u.updates):>8.0f}"
            f" {statistics.median(s.seconds):>17.2f} s"
            f" {statistics.median(s.requests):>9.0f} {statistics.median(s.updates):>8.0f}"
        )
    if len(results) == 2:
        base, this = results
        ratio = statistics.median(this.same.seconds) / statistics.median(base.same.seconds)
        upgrade = statistics.median(this.upgrade.seconds) / statistics.median(base.upgrade.seconds)
        print(f"\nthis / baseline: upgrade {upgrade:.2f}x, same version {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median)")
    parser.add_argument("--trays", type=int, default=35, help="Compute systems in the rack")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout (its .venv) measured the same way"
    )
    args = parser.parse_args()
    checkouts = targets(Path(sys.executable), args.baseline)
    results = [run_target(t, args.runs, args.trays) for t in checkouts]
    print_table(args.runs, args.trays, results)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
