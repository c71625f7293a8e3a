"""Fixtures for Redfish backend tests: emulators per test, settings, the backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nico.config import Settings
from nico.domain import ComponentType, PowerState
from nico.hardware.interface import BmcEndpoint, TrayRef
from nico.hardware.redfish.backend import RedfishBackend
from tests.support.sushy import SushyEmulator, start_emulator

SITE_ID = "site-1"

StartEmulator = Callable[..., SushyEmulator]


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[StartEmulator]:
    """Start sushy-tools emulators for this test (each in its own tmp state dir)."""
    started: list[SushyEmulator] = []

    def start(**options: Any) -> SushyEmulator:
        emulator = start_emulator(tmp_path / f"bmc{len(started)}", **options)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def redfish_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "nico",
        redfish_timeout=5.0,
        redfish_power_wait=5.0,
        bmc_concurrency=4,
    )


@pytest.fixture
async def backend(redfish_settings: Settings) -> AsyncIterator[RedfishBackend]:
    backend = RedfishBackend(redfish_settings)
    yield backend
    await backend.aclose()


def tray(
    bmc: BmcEndpoint | None,
    component_type: ComponentType = ComponentType.COMPUTE,
    name: str = "tray",
) -> TrayRef:
    return TrayRef(
        id=str(uuid.uuid4()),
        rack_id="rack-1",
        site_id=SITE_ID,
        type=component_type,
        name=name,
        backend="redfish",
        bmc=bmc,
    )


def key() -> str:
    return f"op-{uuid.uuid4()}"


async def wait_for_power(
    backend: RedfishBackend, target: TrayRef, wanted: PowerState, within: float = 5.0
) -> None:
    """Poll like the engine's verify step until the tray reads `wanted`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (state := await backend.power_status(target)) != wanted:
        assert loop.time() < deadline, f"tray stayed {state}, wanted {wanted}"
        await asyncio.sleep(0.1)
