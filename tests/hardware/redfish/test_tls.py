"""TLS to BMCs: verified by default, against the site's CA bundle, or explicitly off."""

from __future__ import annotations

import pytest

from nico.config import Settings
from nico.domain import PowerState
from nico.hardware.interface import HardwareError
from nico.hardware.redfish.backend import RedfishBackend
from tests.hardware.redfish.conftest import StartEmulator, tray
from tests.support.sushy import FakeSystem

pytestmark = pytest.mark.redfish


async def test_a_bmc_certificate_signed_by_the_site_ca_is_trusted(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), tls=True, sessions=True)
    target = tray(emulator.endpoint())

    assert emulator.url.startswith("https://")
    assert await backend.power_status(target) == PowerState.OFF


async def test_a_bmc_certificate_from_an_unknown_ca_is_refused_clearly(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), tls=True)
    target = tray(emulator.endpoint(ca_bundle=None))

    with pytest.raises(HardwareError) as refused:
        await backend.reachable(target)

    text = str(refused.value)
    assert f"BMC 127.0.0.1:{emulator.port} TLS certificate is not trusted" in text
    assert "CA bundle" in text
    assert refused.value.retryable is False


async def test_verification_turned_off_explicitly_reaches_the_bmc(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), tls=True)
    target = tray(emulator.endpoint(ca_bundle=None, verify_tls=False))

    assert await backend.reachable(target) is True


async def test_the_settings_ca_bundle_file_is_used_when_the_site_gives_none(
    emulator_factory: StartEmulator, redfish_settings: Settings
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), tls=True)
    assert emulator.tls is not None
    bundle = emulator.tls.cert_file.parent / "site-ca.pem"
    bundle.write_text(emulator.tls.ca_pem)
    backend = RedfishBackend(redfish_settings.model_copy(update={"redfish_ca_bundle": str(bundle)}))
    try:
        assert await backend.reachable(tray(emulator.endpoint(ca_bundle=None))) is True
    finally:
        await backend.aclose()


async def test_a_broken_ca_bundle_is_a_clear_permanent_error(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1"),), tls=True)
    target = tray(emulator.endpoint(ca_bundle="-----BEGIN CERTIFICATE-----\nnot a cert\n"))

    with pytest.raises(HardwareError) as refused:
        await backend.power_status(target)

    assert "CA bundle for BMC" in str(refused.value)
    assert refused.value.retryable is False
