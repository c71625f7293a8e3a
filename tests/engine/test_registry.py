"""The backend registry: which backend drives a tray, and what a backend receives about it."""

from __future__ import annotations

import uuid

import pytest

from nico.hardware.interface import HardwareError
from nico.hardware.simulator import SimulatorBackend
from nico.services import Services
from nico.store.models import Bmc, Rack, Site, Tray
from tests.engine.support import make_rack


async def test_backend_is_the_trays_else_the_racks_else_the_default(services: Services) -> None:
    rack = await make_rack(services, compute=2, switches=0, shelves=0, backend="redfish")
    first, second = rack.of("Compute")
    async with services.db.session() as session:
        tray = await session.get(Tray, uuid.UUID(first.id))
        assert tray is not None
        tray.backend = "simulator"
    refs = await services.backends.tray_refs([first.id, second.id])
    assert (refs[first.id].backend, refs[second.id].backend) == ("simulator", "redfish")
    async with services.db.session() as session:
        row = await session.get(Rack, rack.rack_id)
        assert row is not None
        row.backend = None
    assert (await services.backends.tray_ref(second.id)).backend == "simulator"  # NICO_BACKEND
    assert isinstance(services.backends.backend("simulator"), SimulatorBackend)
    with pytest.raises(HardwareError, match="unknown backend 'ipmi'") as raised:
        services.backends.backend("ipmi")
    assert not raised.value.retryable


async def test_bmc_password_is_decrypted_into_the_ref_only(services: Services) -> None:
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    compute = rack.of("Compute")[0]
    async with services.db.session() as session:
        session.add(
            Bmc(
                tray_id=uuid.UUID(compute.id),
                type="Host",
                ip_address="10.0.0.7",
                port=8443,
                username="admin",
                password_encrypted=services.secrets.encrypt("s3cret-pw"),
            )
        )
        site = await session.get(Site, rack.site_id)
        assert site is not None
        site.bmc_verify_tls = False
        site.bmc_ca_bundle = "-----BEGIN CERTIFICATE-----\n..."
    ref = await services.backends.tray_ref(compute.id)
    assert ref.bmc is not None
    assert (ref.bmc.address, ref.bmc.port, ref.bmc.username) == ("10.0.0.7", 8443, "admin")
    assert ref.bmc.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(ref)
    assert ref.bmc.verify_tls is False
    assert ref.bmc.ca_bundle is not None and ref.bmc.ca_bundle.startswith("-----BEGIN")
    assert "BEGIN" not in repr(ref)


async def test_a_missing_tray_is_a_permanent_error(services: Services) -> None:
    with pytest.raises(HardwareError, match="no longer exists") as raised:
        await services.backends.tray_ref(uuid.uuid4())
    assert not raised.value.retryable
