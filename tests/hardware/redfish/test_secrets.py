"""BMC passwords and session tokens never reach an error, a log line or a traceback."""

from __future__ import annotations

import logging
import traceback

import pytest

from nico.hardware.interface import HardwareError
from nico.hardware.redfish.backend import RedfishBackend
from tests.hardware.redfish.conftest import StartEmulator, key, tray
from tests.support.sushy import PASSWORD, FakeSystem

pytestmark = pytest.mark.redfish


def everything_said(errors: list[BaseException], caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    parts += [record.getMessage() for record in caplog.records]
    for error in errors:
        parts.append(str(error))
        parts.append(repr(error))
        parts.append("".join(traceback.format_exception(error)))
    return "\n".join(parts)


async def test_failing_runs_never_reveal_the_password_or_session_token(
    emulator_factory: StartEmulator, backend: RedfishBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with_sessions = emulator_factory(
        systems=(FakeSystem("node1", power_state="On"),), sessions=True
    )
    basic = emulator_factory(systems=(FakeSystem("node1"),))
    good = tray(with_sessions.endpoint())
    errors: list[BaseException] = []

    async def expect_failure(call: object) -> None:
        with pytest.raises(HardwareError) as failed:
            await call  # type: ignore[misc]
        errors.append(failed.value)

    # A working session first, so there is a token to leak.
    await backend.power_status(good)
    token = with_sessions.stats()["session_tokens"][0]
    # A BMC that echoes what it was sent in its error text.
    with_sessions.inject_fault(
        status=400,
        method="POST",
        path="/redfish/v1/Systems",
        message=f"Request from admin:{PASSWORD} with X-Auth-Token {token} rejected",
    )
    await expect_failure(backend.power_control(good, "force_power_off", operation_key=key()))
    with_sessions.inject_fault(status=503, retry_after=0, count=4, path="/redfish/v1/Systems")
    await expect_failure(backend.power_status(good))
    # Wrong password against sessions and against basic auth.
    await expect_failure(
        backend.power_status(tray(with_sessions.endpoint(password=PASSWORD + "x")))
    )
    await expect_failure(backend.power_status(tray(basic.endpoint(password=PASSWORD + "y"))))
    await backend.aclose()
    basic.stop()
    await expect_failure(backend.power_status(tray(basic.endpoint())))

    said = everything_said(errors, caplog)
    assert PASSWORD not in said
    assert token not in said
    assert "***" in str(errors[0])
    assert len(errors) == 5
    assert f"{PASSWORD}" not in repr(good)
