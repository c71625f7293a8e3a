"""Firmware over Redfish: SimpleUpdate with the site catalog's image, task progress,
versions from FirmwareInventory (the emulator's firmware parts are added by the tests'
launcher, see tests/support/sushy_launcher.py)."""

from __future__ import annotations

import asyncio

import pytest

from nico.config import Settings
from nico.hardware.interface import FirmwareJob, FirmwareJobState, HardwareError, TrayRef
from nico.hardware.redfish.backend import RedfishBackend
from tests.hardware.redfish.conftest import SITE_ID, StartEmulator, key, tray
from tests.support.sushy import FakeSystem

pytestmark = pytest.mark.redfish

CATALOG = {
    "compute": {
        "2.1.0": "http://images.example/compute-2.1.0.fwpkg",
        "2.0.0": "http://images.example/compute-2.0.0.fwpkg",
        "3.0.0-bad": "http://images.example/corrupt-3.0.0.fwpkg",
    },
    "*": {"9.9.9": "http://images.example/any-9.9.9.bin"},
}


async def run_to_end(backend: RedfishBackend, target: TrayRef, job_id: str) -> list[FirmwareJob]:
    """Poll a job like the engine does, returning every status seen."""
    seen = [await backend.firmware_status(target, job_id)]
    for _ in range(100):
        if seen[-1].state in (FirmwareJobState.COMPLETED, FirmwareJobState.FAILED):
            return seen
        await asyncio.sleep(0.05)
        seen.append(await backend.firmware_status(target, job_id))
    raise AssertionError(f"firmware job never finished: {seen[-1]}")


async def test_update_installs_the_catalog_image_and_reports_progress(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"), FakeSystem("node2")))
    backend.set_firmware_catalog(SITE_ID, CATALOG)
    target = tray(emulator.endpoint(resource_id="node2"))
    other = tray(emulator.endpoint(resource_id="node1"))
    assert await backend.firmware_version(target) == "1.0.0"

    job_id = await backend.firmware_start(target, "2.1.0", ("bmc",), operation_key=key())
    seen = await run_to_end(backend, target, job_id)

    assert seen[0].state == FirmwareJobState.RUNNING
    assert seen[-1].state == FirmwareJobState.COMPLETED
    assert seen[-1].percent == 100
    assert "Installed version 2.1.0" in seen[-1].message
    percents = [job.percent for job in seen]
    assert percents == sorted(percents)
    assert await backend.firmware_version(target) == "2.1.0"
    assert await backend.firmware_version(other) == "1.0.0"


async def test_the_same_operation_key_starts_one_update(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    backend.set_firmware_catalog(SITE_ID, CATALOG)
    target = tray(emulator.endpoint())
    operation = key()

    first, again = await asyncio.gather(
        backend.firmware_start(target, "2.0.0", (), operation_key=operation),
        backend.firmware_start(target, "2.0.0", (), operation_key=operation),
    )
    later = await backend.firmware_start(target, "2.0.0", (), operation_key=operation)

    assert first == again == later
    assert len(emulator.updates()) == 1
    assert (await run_to_end(backend, target, first))[-1].state == FirmwareJobState.COMPLETED


async def test_a_failed_update_reports_the_bmc_task_messages(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    backend.set_firmware_catalog(SITE_ID, CATALOG)
    target = tray(emulator.endpoint())

    job_id = await backend.firmware_start(target, "3.0.0-bad", (), operation_key=key())
    final = (await run_to_end(backend, target, job_id))[-1]

    assert final.state == FirmwareJobState.FAILED
    assert final.message == "Image verification failed: signature mismatch."
    assert await backend.firmware_version(target) == "1.0.0"


async def test_targets_narrow_the_update_to_the_named_parts(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    target = tray(emulator.endpoint())

    image = "http://images.example/bios-4.2.0.bin"
    backend.set_firmware_catalog(SITE_ID, {"Compute": {"4.2.0": image}})
    job_id = await backend.firmware_start(target, "4.2.0", ("BIOS",), operation_key=key())
    await run_to_end(backend, target, job_id)

    # BMC firmware is what the tray reports; only the BIOS moved.
    assert await backend.firmware_version(target) == "1.0.0"
    assert emulator.firmware_part("node1-BIOS")["Version"] == "4.2.0"
    assert emulator.updates() == [
        {"image": image, "targets": ["/redfish/v1/UpdateService/FirmwareInventory/node1-BIOS"]}
    ]


async def test_no_version_means_the_highest_catalog_version_for_the_type(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    backend.set_firmware_catalog(
        SITE_ID, {"Compute": {"2.10.0": "http://i/c-2.10.0.bin", "2.9.1": "http://i/c-2.9.1.bin"}}
    )
    target = tray(emulator.endpoint())

    job_id = await backend.firmware_start(target, None, (), operation_key=key())
    await run_to_end(backend, target, job_id)

    assert await backend.firmware_version(target) == "2.10.0"


async def test_an_unknown_version_or_part_fails_before_the_bmc_is_asked(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    backend.set_firmware_catalog(SITE_ID, CATALOG)
    target = tray(emulator.endpoint())

    with pytest.raises(HardwareError) as no_image:
        await backend.firmware_start(target, "7.7.7", (), operation_key=key())
    with pytest.raises(HardwareError) as no_part:
        await backend.firmware_start(target, "2.1.0", ("nic",), operation_key=key())

    assert "no image for Compute version 7.7.7" in str(no_image.value)
    assert "2.0.0, 2.1.0, 3.0.0-bad, 9.9.9" in str(no_image.value)
    assert "no firmware component named nic" in str(no_part.value)
    assert "node1-BMC" in str(no_part.value)
    assert not no_image.value.retryable and not no_part.value.retryable
    assert emulator.updates() == []


async def test_inventory_lists_every_component_of_the_tray_with_its_version(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    """The state sync's read: the tray's FirmwareInventory members (not its neighbours'),
    named as the BMC names them, and the main version the engine reads too."""
    emulator = emulator_factory(systems=(FakeSystem("node1"), FakeSystem("node2")))
    backend.set_firmware_catalog(SITE_ID, CATALOG)
    target = tray(emulator.endpoint(resource_id="node2"))
    before = emulator.stats()["requests"]
    inventory = await backend.firmware_inventory(target)
    assert sorted((c.id, c.name, c.version) for c in inventory.components) == [
        ("node2-BIOS", "node2 BIOS firmware", "1.0.0"),
        ("node2-BMC", "node2 BMC firmware", "1.0.0"),
    ]
    assert inventory.version == "1.0.0"
    assert emulator.stats()["resets"] == [] and emulator.updates() == []
    assert emulator.stats()["requests"] > before

    job_id = await backend.firmware_start(target, "2.1.0", ("bmc",), operation_key=key())
    await run_to_end(backend, target, job_id)
    after = await backend.firmware_inventory(target)
    assert {c.name: c.version for c in after.components}["node2 BMC firmware"] == "2.1.0"
    assert after.version == "2.1.0"


async def read_every_tray(emulator_factory: StartEmulator, systems: int) -> int:
    """The emulator's request count for reading the inventories of `systems` trays that
    share it, as a sync batch or a step does (concurrently), in a fresh backend."""
    names = [f"node{i}" for i in range(systems)]
    emulator = emulator_factory(systems=tuple(FakeSystem(name) for name in names))
    backend = RedfishBackend(Settings(redfish_timeout=10.0, bmc_concurrency=4))
    try:
        emulator.reset_counters()
        before = emulator.stats()["requests"]
        trays = [tray(emulator.endpoint(resource_id=name), name=name) for name in names]
        inventories = await asyncio.gather(*(backend.firmware_inventory(t) for t in trays))
        for name, inventory in zip(names, inventories, strict=True):
            assert {c.id for c in inventory.components} == {f"{name}-BMC", f"{name}-BIOS"}
        return int(emulator.stats()["requests"]) - before
    finally:
        await backend.aclose()


async def test_reading_many_trays_on_one_bmc_costs_requests_linear_in_the_trays(
    emulator_factory: StartEmulator,
) -> None:
    """35 systems behind one emulator once cost a walk of all 70 members per tray read
    (10,705 requests for a 35-tray upgrade); the trays of one BMC now share the walk."""
    alone = await read_every_tray(emulator_factory, 1)
    two = await read_every_tray(emulator_factory, 2)
    eight = await read_every_tray(emulator_factory, 8)
    # Per tray: its share of the walk (two members), its system, its own members again.
    assert eight - two <= 6 * (two - alone) + 6, (alone, two, eight)
    assert eight <= 4 * two + 4, (alone, two, eight)


async def test_a_read_after_an_update_sees_it_though_a_neighbour_just_walked(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    """The shared walk never hides an update that finished after it: a tray read right
    after its update reports the new version, its neighbour's stays as it was."""
    emulator = emulator_factory(systems=(FakeSystem("node1"), FakeSystem("node2")))
    backend.set_firmware_catalog(SITE_ID, CATALOG)
    target = tray(emulator.endpoint(resource_id="node2"))
    other = tray(emulator.endpoint(resource_id="node1"))
    job_id = await backend.firmware_start(target, "2.1.0", ("bmc",), operation_key=key())
    assert (await backend.firmware_inventory(other)).version == "1.0.0"  # walks, mid-update
    await run_to_end(backend, target, job_id)
    before = emulator.stats()["requests"]
    assert (await backend.firmware_inventory(target)).version == "2.1.0"
    assert (await backend.firmware_inventory(other)).version == "1.0.0"
    # Within the walk's lifetime each read costs its system (found in the Systems
    # collection) and its own two members: no walk.
    assert emulator.stats()["requests"] - before == 2 * 4
