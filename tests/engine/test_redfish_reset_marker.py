"""A Redfish restart whose answer was cut off (the worker died after the BMC took it) is
known to have happened when the BMC reports `LastResetTime`: the retry sees the marker
moved and records the cycle instead of failing the tray as "outcome unknown"; a BMC
without it keeps the honest "outcome unknown" (issue 9, verified outcomes). Real
sushy-tools emulator, real ledger, the engine's `power_control` activity."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from nico.engine import ledger
from nico.engine.activities import EngineActivities
from nico.engine.payloads import PowerCommand, PowerResult
from nico.services import Services
from nico.store.models import Bmc
from tests.engine.support import make_rack
from tests.support.sushy import PASSWORD, USERNAME, FakeSystem, SushyEmulator, start_emulator


async def redfish_tray(services: Services, emulator: SushyEmulator, system: FakeSystem) -> str:
    rack = await make_rack(services, compute=1, switches=0, shelves=0, backend="redfish")
    tray = rack.of("Compute")[0]
    async with services.db.session() as session:
        session.add(
            Bmc(
                tray_id=uuid.UUID(tray.id),
                ip_address="http://127.0.0.1",
                port=emulator.port,
                resource_id=system.uuid,
                username=USERNAME,
                password_encrypted=services.secrets.encrypt(PASSWORD),
            )
        )
    return tray.id


async def cut_off_restart(services: Services, tray_id: str) -> tuple[str, str | None]:
    """What a first attempt did before its worker died: the intent with the marker it
    read, then the restart the BMC carried out; no acceptance recorded."""
    key = f"{uuid.uuid4()}/stage-1/step-0/{tray_id}/main"
    ref = await services.backends.tray_ref(tray_id)
    backend = services.backends.backend_for(ref)
    before = await backend.reset_marker(ref)
    async with services.db.session() as session:
        await ledger.intend(session, key, tray_id, "power", {"code": "restart", "marker": before})
    await backend.power_control(ref, "restart", operation_key=key)
    return key, before


@pytest.mark.parametrize("reported", [True, False], ids=["LastResetTime", "no-marker"])
async def test_a_cut_off_redfish_restart_is_known_done_when_the_bmc_reports_its_reset_time(
    services: Services, tmp_path: Path, reported: bool
) -> None:
    system = FakeSystem("node0", power_state="On")
    emulator = start_emulator(
        tmp_path / "bmc", systems=(system,), sessions=True, last_reset_time=reported
    )
    try:
        tray_id = await redfish_tray(services, emulator, system)
        key, before = await cut_off_restart(services, tray_id)
        assert (before is not None) is reported
        retry = ActivityEnvironment().run(
            EngineActivities(services, None).power_control, PowerCommand(key, tray_id, "restart")
        )
        if reported:
            assert await retry == PowerResult()  # the cycle is known, not sent again
            async with services.db.session() as session:
                assert await ledger.recorded(session, key) is not None
        else:
            with pytest.raises(ApplicationError) as failed:
                await retry
            assert "outcome unknown" in str(failed.value)
            assert failed.value.non_retryable
        assert len(emulator.resets()) == 1  # never a second restart
    finally:
        await services.backends.aclose()
        emulator.stop()
