"""The Redfish client's manners towards a BMC: sessions, 503, the per-BMC cap, errors."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from nico.config import Settings
from nico.domain import PowerState
from nico.hardware.interface import BmcEndpoint, HardwareError, TrayRef
from nico.hardware.redfish.backend import RedfishBackend
from tests.hardware.redfish.conftest import StartEmulator, key, tray
from tests.support.sushy import FakeSystem

pytestmark = pytest.mark.redfish


async def test_session_is_created_once_reused_and_deleted_on_close(
    emulator_factory: StartEmulator, redfish_settings: Settings
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), sessions=True)
    backend = RedfishBackend(redfish_settings)
    target = tray(emulator.endpoint())

    for _ in range(5):
        assert await backend.power_status(target) == PowerState.OFF
    await backend.power_control(target, "power_on", operation_key=key())
    assert emulator.stats()["logins"] == 1
    assert emulator.stats()["live_sessions"] == 1

    await backend.aclose()
    stats = emulator.stats()
    assert stats["live_sessions"] == 0
    assert stats["deleted_sessions"] == 1


async def test_an_expired_session_is_replaced_once_and_the_call_succeeds(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), sessions=True)
    target = tray(emulator.endpoint())
    assert await backend.power_status(target) == PowerState.OFF

    emulator.expire_sessions()

    assert await backend.power_status(target) == PowerState.OFF
    assert emulator.stats()["logins"] == 2


async def test_a_bmc_without_sessions_gets_basic_auth(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), sessions=False)
    target = tray(emulator.endpoint())

    assert await backend.reachable(target) is True
    assert emulator.stats()["logins"] == 0


async def test_503_with_retry_after_is_waited_out_then_retried(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    target = tray(emulator.endpoint())
    assert await backend.power_status(target) == PowerState.OFF
    emulator.inject_fault(status=503, retry_after=1, count=2, path="/redfish/v1/Systems")

    started = time.monotonic()
    assert await backend.power_status(target) == PowerState.OFF

    assert time.monotonic() - started >= 2.0
    assert emulator.stats()["fault_hits"] == 2


async def test_a_bmc_that_stays_busy_fails_retryably_with_its_message(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    target = tray(emulator.endpoint())
    emulator.inject_fault(
        status=503,
        retry_after=0,
        count=10,
        path="/redfish/v1/Systems",
        message="HOSTBMC fails to communicate with HMC",
    )

    with pytest.raises(HardwareError) as failed:
        await backend.power_status(target)

    assert "HOSTBMC fails to communicate with HMC" in str(failed.value)
    assert "HTTP 503" in str(failed.value)
    assert failed.value.retryable is True
    # One try and a bounded number of retries, never a loop.
    assert emulator.stats()["fault_hits"] == 4


async def test_requests_to_one_bmc_never_exceed_the_cap_across_backends(
    emulator_factory: StartEmulator, redfish_settings: Settings
) -> None:
    emulator = emulator_factory(
        systems=tuple(FakeSystem(f"node{i}") for i in range(6)), request_delay=0.2
    )
    # Two backends stand for two tasks in one worker; they share the BMC's cap.
    first, second = RedfishBackend(redfish_settings), RedfishBackend(redfish_settings)
    trays = [tray(emulator.endpoint(resource_id=f"node{i}")) for i in range(6)]
    try:
        await asyncio.gather(*(b.reachable(t) for b in (first, second) for t in trays))
        emulator.reset_counters()
        polls = [b.power_status(t) for b in (first, second) for t in trays]
        states = await asyncio.gather(*polls)
    finally:
        await first.aclose()
        await second.aclose()

    assert states == [PowerState.OFF] * 12
    assert emulator.stats()["max_in_flight"] == redfish_settings.bmc_concurrency


async def test_a_command_goes_before_status_reads_waiting_for_the_bmc(
    emulator_factory: StartEmulator, redfish_settings: Settings
) -> None:
    """One request at a time to this BMC, six trays' status reads queued, then a power
    command for a seventh: the command (its read and its reset) is served next, not after
    every read. With 35 trays behind one BMC the reads of the trays already switched used
    to hold back the others' commands."""
    emulator = emulator_factory(
        systems=tuple(FakeSystem(f"node{i}") for i in range(7)), request_delay=0.15
    )
    settings = redfish_settings.model_copy(update={"bmc_concurrency": 1})
    backend = RedfishBackend(settings)
    trays = [tray(emulator.endpoint(resource_id=f"node{i}")) for i in range(7)]
    finished: list[str] = []

    async def read(target: TrayRef) -> None:
        await backend.power_status(target)
        finished.append("read")

    try:
        await backend.reachable(trays[0])  # log in first
        reads = [asyncio.create_task(read(t)) for t in trays[:6]]
        await asyncio.sleep(0.05)  # the reads wait for the BMC's one slot
        await backend.power_control(trays[6], "power_on", operation_key=key())
        finished.append("command")
        await asyncio.gather(*reads)
    finally:
        await backend.aclose()
    assert finished.index("command") <= 2, finished
    assert emulator.resets() == ["On"]


async def test_bmc_error_text_comes_from_extended_info(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1", power_state="On"),))
    target = tray(emulator.endpoint())
    emulator.inject_fault(
        status=400,
        method="POST",
        path="/redfish/v1/Systems",
        message="ChassisPowerStateOffRequired: the chassis must be powered off first.",
    )

    with pytest.raises(HardwareError) as failed:
        await backend.power_control(target, "force_power_off", operation_key=key())

    text = str(failed.value)
    assert "ChassisPowerStateOffRequired: the chassis must be powered off first." in text
    assert "ComputerSystem.Reset ForceOff" in text
    assert failed.value.retryable is False


async def test_a_bmc_nobody_answers_is_unreachable_not_an_exception(
    backend: RedfishBackend,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = tray(BmcEndpoint(address="http://127.0.0.1", port=port, username="u", password="p"))

    assert await backend.reachable(target) is False
    with pytest.raises(HardwareError) as failed:
        await backend.power_status(target)
    assert str(failed.value).startswith(f"BMC 127.0.0.1:{port} unreachable:")
    assert failed.value.retryable is True


async def test_wrong_credentials_are_a_permanent_error_naming_the_fix(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),))
    target = tray(emulator.endpoint(password="wrong-password"))

    with pytest.raises(HardwareError) as failed:
        await backend.reachable(target)

    assert "HTTP 401" in str(failed.value)
    assert "check the BMC username and password" in str(failed.value)
    assert failed.value.retryable is False


async def test_a_tray_without_a_bmc_fails_clearly(backend: RedfishBackend) -> None:
    with pytest.raises(HardwareError) as failed:
        await backend.power_status(tray(None, name="compute-07"))
    assert "compute-07 has no BMC address" in str(failed.value)
    assert failed.value.retryable is False


async def test_a_bmc_failing_its_service_root_is_asked_again_not_downgraded_to_basic_auth(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), sessions=True)
    target = tray(emulator.endpoint())
    emulator.inject_fault(status=500, count=1, method="GET", path="/redfish/v1/")

    with pytest.raises(HardwareError) as failed:
        await backend.power_status(target)
    assert "HTTP 500" in str(failed.value) and failed.value.retryable is True

    # Once the BMC answers, the client finds its sessions and uses them.
    assert await backend.power_status(target) == PowerState.OFF
    assert emulator.stats()["logins"] == 1


async def test_a_bmc_whose_service_root_keeps_failing_is_used_with_basic_auth(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), sessions=True)
    target = tray(emulator.endpoint())
    emulator.inject_fault(status=500, count=3, method="GET", path="/redfish/v1/")

    for _ in range(2):  # asked again each time, a bounded number of times
        with pytest.raises(HardwareError, match="HTTP 500"):
            await backend.power_status(target)
    assert await backend.power_status(target) == PowerState.OFF
    assert emulator.stats()["logins"] == 0  # basic auth, no session
