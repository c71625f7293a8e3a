"""Redfish end to end: a rack imported with `POST /rack` whose trays point at systems and
chassis of the sushy-tools emulator, powered off, on and force-restarted through
`PATCH /rack/{id}/power`; the emulator's own record shows the power states changing in
the order the built-in rules promise. A bring-up, which plain Redfish cannot do, fails
before any BMC is touched. Firmware: an unlisted version never reaches a BMC, trays whose
BMC reports the version are skipped unless overrideVersionCheck, upgrades say from -> to.
ACPowerCycle cuts and restores the shelves through their Chassis, nothing else."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from tests.support.inventory import create_site
from tests.support.live import BASE, Live, live_api, made_rack
from tests.support.sushy import (
    PASSWORD,
    USERNAME,
    FakeChassis,
    FakeSystem,
    SushyEmulator,
    start_emulator,
)

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.redfish]

SHELVES = ("powershelf-01", "powershelf-02")
SWITCHES = ("nvswitch-01", "nvswitch-02")
COMPUTE = ("compute-01", "compute-02", "compute-03")
TYPE_OF = (
    {name: "PowerShelf" for name in SHELVES}
    | {name: "NVLSwitch" for name in SWITCHES}
    | {name: "Compute" for name in COMPUTE}
)
POWER_ON_ORDER = ("PowerShelf", "NVLSwitch", "Compute")


SYSTEMS = tuple(FakeSystem(name, power_state="On") for name in COMPUTE)
# The emulator logs a system's reset by its UUID, a chassis reset by its name.
NAME_OF = {system.uuid: system.name for system in SYSTEMS} | {n: n for n in SHELVES + SWITCHES}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[SushyEmulator]:
    """One BMC serving the compute trays as Systems and shelves and switches as Chassis,
    everything powered on (sushy's chassis start On)."""
    bmc = start_emulator(
        tmp_path / "bmc",
        systems=SYSTEMS,
        chassis=tuple(FakeChassis(name) for name in SHELVES + SWITCHES),
    )
    yield bmc
    bmc.stop()


def redfish_rack(site_id: str, emulator: SushyEmulator) -> dict[str, Any]:
    """`POST /rack` body: every tray's BMC is the emulator, its resource named like it."""
    tag = uuid.uuid4().hex[:8].upper()
    return {
        "siteId": site_id,
        "name": "rack-rf",
        "backend": "redfish",
        "components": [
            {
                "type": TYPE_OF[name],
                "name": name,
                "manufacturer": "NVIDIA",
                "serialNumber": f"{tag}-{name}",
                "bmcs": [
                    {
                        "type": "BmcTypeHost",
                        "ipAddress": emulator.url,
                        "resourceId": name,
                        "username": USERNAME,
                        "password": PASSWORD,
                    }
                ],
            }
            for name in SHELVES + SWITCHES + COMPUTE
        ],
    }


@pytest.fixture
async def live(
    temporal_env: WorkflowEnvironment,
    services: Services,
    auth: dict[str, str],
    client: httpx.AsyncClient,
    emulator: SushyEmulator,
) -> AsyncIterator[Live]:
    site = await create_site(client, auth)
    response = await client.post(
        f"{BASE}/rack", json=redfish_rack(site["id"], emulator), headers=auth
    )
    assert response.status_code == 201, response.text
    assert {c["backend"] for c in response.json()["components"]} == {"redfish"}
    async with live_api(services, temporal_env, auth, made_rack(response.json())) as served:
        yield served


async def power(live: Live, state: str) -> dict[str, Any]:
    [task_id] = await live.operate("PATCH", f"/rack/{live.rack.rack_id}/power", {"state": state})
    task = await live.finished(task_id)
    assert task["status"] == "Succeeded", task
    return task


def transitions(emulator: SushyEmulator) -> list[tuple[str, str]]:
    """(tray type, new power state) for every change the emulator went through, in order.
    A system's change shows once it is read (sushy's fake driver applies it lazily)."""
    return [(TYPE_OF[h["name"]], h["state"]) for h in emulator.stats()["history"]]


def commands(emulator: SushyEmulator) -> list[tuple[str, str]]:
    """(tray type, ResetType) for every reset the emulator received, in order."""
    return [(TYPE_OF[NAME_OF[r["identity"]]], r["type"]) for r in emulator.stats()["resets"]]


def in_order(types: list[str], order: tuple[str, ...]) -> bool:
    ranks = [order.index(t) for t in types]
    return ranks == sorted(ranks)


async def test_power_off_on_and_force_restart_follow_the_rule_order(
    live: Live, emulator: SushyEmulator
) -> None:
    off_order = tuple(reversed(POWER_ON_ORDER))
    every_tray = sorted(TYPE_OF.values())

    # Graceful: each stage is verified before the next, so the states change in order.
    await power(live, "off")
    seen = transitions(emulator)
    assert {state for _, state in seen} == {"Off"} and sorted(t for t, _ in seen) == every_tray
    assert in_order([t for t, _ in seen], off_order), seen
    sent = commands(emulator)
    assert {reset for _, reset in sent} == {"GracefulShutdown"}
    assert in_order([t for t, _ in sent], off_order), sent

    emulator.reset_counters()
    await power(live, "on")
    seen = transitions(emulator)
    assert {state for _, state in seen} == {"On"} and sorted(t for t, _ in seen) == every_tray
    assert in_order([t for t, _ in seen], POWER_ON_ORDER), seen
    assert in_order([t for t, _ in commands(emulator)], POWER_ON_ORDER)

    # Forced: off commands compute -> switches -> shelves, a verify stage, then on
    # commands shelves -> switches -> compute (chassis have no ForceOn: On instead).
    emulator.reset_counters()
    await power(live, "forcecycle")
    sent = commands(emulator)
    offs = [t for t, reset in sent if reset == "ForceOff"]
    assert sent[: len(offs)] == [(t, "ForceOff") for t in offs], sent
    ons = sent[len(offs) :]
    assert sorted(offs) == sorted(t for t, _ in ons) == every_tray, sent
    assert in_order(offs, off_order) and in_order([t for t, _ in ons], POWER_ON_ORDER), sent
    assert {reset for t, reset in ons if t != "Compute"} == {"On"}
    for name in SHELVES + SWITCHES + COMPUTE:
        assert emulator.power_history(name) == ["Off", "On"], name


async def test_bring_up_fails_before_any_bmc_is_touched(
    live: Live, emulator: SushyEmulator
) -> None:
    emulator.reset_counters()
    requests_before = emulator.stats()["requests"]
    [task_id] = await live.operate("POST", f"/rack/{live.rack.rack_id}/bringup", {})
    task = await live.finished(task_id)
    assert task["status"] == "Failed", task
    assert "BringUpControl needs capability" in task["message"]
    assert "which the redfish backend lacks for Compute" in task["message"]
    assert emulator.stats()["requests"] == requests_before
    assert emulator.stats()["resets"] == [] and emulator.stats()["history"] == []


async def firmware(live: Live, body: dict[str, Any]) -> dict[str, Any]:
    [task_id] = await live.operate("PATCH", f"/rack/{live.rack.rack_id}/firmware", body)
    return await live.finished(task_id)


def firmware_steps(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps = [s for st in task["report"]["stages"] for s in st["steps"]]
    return {s["componentType"]: s for s in steps if "components" in s}


async def test_firmware_versions_are_checked_at_submit_and_read_from_the_bmc(
    live: Live, emulator: SushyEmulator
) -> None:
    # A version the site catalog does not list: 400, and no BMC hears of it (this rack
    # used to answer 200 and fail later).
    refused = await live.http.patch(
        f"{BASE}/rack/{live.rack.rack_id}/firmware", json=live.site | {"version": "9.9.9"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["data"]["version"].startswith(
        "9.9.9 is not in the site's firmware catalog for Compute"
    )
    assert emulator.updates() == []

    # The BMCs report 1.0.0: asking for it skips every tray, and no update is sent.
    done = await firmware(live, {"version": "1.0.0"})
    assert done["status"] == "Succeeded", done
    assert done["message"].startswith("Succeeded; 5 trays already ran")
    assert {k: s["skippedComponents"] for k, s in firmware_steps(done).items()} == {
        "Compute": 3,
        "NVLSwitch": 2,
    }
    assert emulator.updates() == []

    # overrideVersionCheck reflashes them: one SimpleUpdate per tray.
    done = await firmware(live, {"version": "1.0.0", "overrideVersionCheck": True})
    assert done["status"] == "Succeeded", done
    assert len(emulator.updates()) == 5
    assert {u["image"] for u in emulator.updates()} == {"https://fw.example/any-1.0.0.fwpkg"}

    # A real upgrade: each tray from 1.0.0 to 2.0.0, as its BMC reported before and after.
    done = await firmware(live, {"version": "2.0.0"})
    assert done["status"] == "Succeeded", done
    outcomes = {
        (c["name"], c["outcome"], c["fromVersion"], c["toVersion"])
        for step in firmware_steps(done).values()
        for c in step["components"]
    }
    assert outcomes == {(name, "completed", "1.0.0", "2.0.0") for name in SWITCHES + COMPUTE}
    assert len(emulator.updates()) == 10

    # Compliance from what the BMCs reported: the catalog's highest version is 2.1, so
    # the updated trays are outdated; the BMC member is judged, the BIOS member (not
    # updated, its own version) is the catalog's blind spot; shelves were never read.
    shown = await live.http.get(f"{BASE}/rack/{live.rack.rack_id}/firmware", params=live.site)
    assert shown.status_code == 200, shown.text
    assert shown.json()["summary"] == {
        "total": 7,
        "current": 0,
        "outdated": 5,
        "unknown": 2,
        "stale": 0,
    }
    compute = next(t for t in shown.json()["components"] if t["name"] == "compute-01")
    assert (compute["version"], compute["targetVersion"]) == ("2.0.0", "2.1")
    assert {(c["id"], c["version"], c["compliance"]) for c in compute["components"]} == {
        ("compute-01-BMC", "2.0.0", "outdated"),
        ("compute-01-BIOS", "1.0.0", "unknown"),
    }


async def test_an_ac_power_cycle_cuts_the_shelves_through_their_chassis_only(
    live: Live, emulator: SushyEmulator
) -> None:
    # This emulator's chassis offer no PowerCycle: each shelf is cut (ForceOff), read
    # Off, and restored (On); switches and systems get no command.
    task = await power(live, "ACPowerCycle")
    assert task["description"] == "API AC power cycle Rack"
    sent = commands(emulator)
    assert sorted(sent) == sorted([("PowerShelf", "ForceOff"), ("PowerShelf", "On")] * 2), sent
    for name in SHELVES:
        assert emulator.power_history(name) == ["Off", "On"], name
    for name in SWITCHES + COMPUTE:
        assert emulator.power_history(name) == [], name

    site = {"siteId": str(live.rack.site_id)}
    history = await live.http.get(f"{BASE}/rack/{live.rack.rack_id}/history", params=site)
    steps = [r for r in history.json() if r["taskId"] == task["id"] and r["outcome"]]
    # One row per shelf cut and per tray it fed, all with the step's outcome.
    assert len(steps) == len(TYPE_OF) and {r["outcome"] for r in steps} == {"Succeeded"}
    assert {r["message"] for r in steps} == {"ac_power_cycle"}
