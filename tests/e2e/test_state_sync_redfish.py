"""The state sync against the sushy-tools Redfish emulator: a system powered off directly
on the BMC shows Off after the next pass; a pass over many racks stays within the per-BMC
request cap and sends no command (the emulator's own record says so); the firmware
inventory is every FirmwareInventory member with its version."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nico.config import Settings
from nico.engine.state_sync import StateSync
from nico.services import Services
from nico.store import observations
from nico.store.models import Tray
from tests.support.inventory import create_site
from tests.support.live import BASE
from tests.support.sushy import (
    PASSWORD,
    USERNAME,
    FakeChassis,
    FakeSystem,
    SushyEmulator,
    start_emulator,
)

pytestmark = [pytest.mark.slow, pytest.mark.redfish]

SHELVES = ("powershelf-01", "powershelf-02")
SWITCHES = ("nvswitch-01",)
COMPUTE = ("compute-01", "compute-02")
TYPE_OF = (
    {name: "PowerShelf" for name in SHELVES}
    | {name: "NVLSwitch" for name in SWITCHES}
    | {name: "Compute" for name in COMPUTE}
)
SYSTEMS = tuple(FakeSystem(name, power_state="On") for name in COMPUTE)
CAP = 2  # NICO_BMC_CONCURRENCY for these tests
RACKS = 100  # the fleet size issue 12 names; 500 trays behind one emulator


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"bmc_concurrency": CAP, "redfish_timeout": 10.0})


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[SushyEmulator]:
    bmc = start_emulator(
        tmp_path / "bmc",
        systems=SYSTEMS,
        chassis=tuple(FakeChassis(name) for name in SHELVES + SWITCHES),
        request_delay=0.01,  # requests overlap unless something holds them back
    )
    yield bmc
    bmc.stop()


def rack_body(site_id: str, name: str, emulator: SushyEmulator) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8].upper()
    return {
        "siteId": site_id,
        "name": name,
        "backend": "redfish",
        "components": [
            {
                "type": TYPE_OF[part],
                "name": part,
                "manufacturer": "NVIDIA",
                "serialNumber": f"{tag}-{part}",
                "bmcs": [
                    {
                        "type": "BmcTypeHost",
                        "ipAddress": emulator.url,
                        "resourceId": part,
                        "username": USERNAME,
                        "password": PASSWORD,
                    }
                ],
            }
            for part in SHELVES + SWITCHES + COMPUTE
        ],
    }


async def import_racks(
    client: httpx.AsyncClient, auth: dict[str, str], emulator: SushyEmulator, racks: int
) -> dict[str, list[dict[str, Any]]]:
    site = await create_site(client, auth)
    made = {}
    for i in range(racks):
        name = f"rack-rf-{i:02d}"
        response = await client.post(
            f"{BASE}/rack", json=rack_body(site["id"], name, emulator), headers=auth
        )
        assert response.status_code == 201, response.text
        made[name] = response.json()["components"]
    return made


def tray_id(components: list[dict[str, Any]], name: str) -> uuid.UUID:
    return uuid.UUID(next(c["id"] for c in components if c["name"] == name))


def press_force_off(emulator: SushyEmulator, system: FakeSystem) -> None:
    """Someone powers the system off on its BMC, not through nico."""
    response = httpx.post(
        f"{emulator.url}/redfish/v1/Systems/{system.uuid}/Actions/ComputerSystem.Reset",
        json={"ResetType": "ForceOff"},
        auth=(USERNAME, PASSWORD),
        timeout=10.0,
    )
    assert response.status_code < 300, response.text


async def test_a_system_powered_off_on_its_bmc_shows_off_after_the_next_pass(
    services: Services, client: httpx.AsyncClient, auth: dict[str, str], emulator: SushyEmulator
) -> None:
    [components] = (await import_racks(client, auth, emulator, 1)).values()
    compute = tray_id(components, "compute-01")
    sync = StateSync(services, interval=60)
    await sync.run_pass(spread=0)
    async with services.db.session() as session:
        assert (await session.get(Tray, compute)).power_state == "On"  # type: ignore[union-attr]
        seen = (await observations.observations_of(session, [compute]))[compute]
    assert seen.firmware_inventory, "the BMC's FirmwareInventory members"
    assert all(c.version for c in seen.firmware_inventory)

    press_force_off(emulator, SYSTEMS[0])
    emulator.reset_counters()
    await sync.run_pass(spread=0)
    async with services.db.session() as session:
        tray = await session.get(Tray, compute)
        seen = (await observations.observations_of(session, [compute]))[compute]
    assert tray is not None and tray.power_state == "Off"
    assert seen.power_state == "Off" and seen.power_error is None
    assert emulator.resets() == [] and emulator.updates() == []  # the pass sent nothing


async def test_a_pass_over_many_racks_keeps_the_bmc_cap_and_sends_no_command(
    services: Services, client: httpx.AsyncClient, auth: dict[str, str], emulator: SushyEmulator
) -> None:
    racks = await import_racks(client, auth, emulator, RACKS)
    emulator.reset_counters()
    result = await StateSync(services, interval=60).run_pass(spread=0)
    trays = RACKS * len(TYPE_OF)
    assert result.trays == trays
    assert (result.power_read, result.power_failed) == (trays, 0)
    assert (result.firmware_read, result.firmware_failed) == (trays, 0)
    stats = emulator.stats()
    assert 0 < stats["max_in_flight"] <= CAP, stats["max_in_flight"]
    assert stats["resets"] == [] and stats["updates"] == [] and stats["history"] == []
    ids = [tray_id(components, "compute-02") for components in racks.values()]
    async with services.db.session() as session:
        seen = await observations.observations_of(session, ids)
    assert {s.power_state for s in seen.values()} == {"On"} and len(seen) == RACKS
