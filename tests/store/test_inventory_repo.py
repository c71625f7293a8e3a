"""Inventory repository and provisioning on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from nico import provisioning
from nico.domain import ComponentType
from nico.errors import Conflict, NicoError
from nico.schemas.inventory import RackCreateRequest
from nico.secretbox import SecretBox
from nico.store import inventory
from nico.store.db import Database
from nico.store.inventory import Page, TraySelector
from nico.store.models import Bmc, Provider, Site, Task, Tray
from tests.support.inventory import nvl72_body

SECRETS = SecretBox(Fernet.generate_key().decode())


async def new_site(db: Database, name: str = "site", *, org: str = "demo") -> Site:
    async with db.session() as session:
        provider = await inventory.get_or_create_provider(session, org)
        return await provisioning.create_site(
            session, provider, name=name, description="", flow=True
        )


async def import_rack(
    db: Database, site: Site, name: str = "rack-01", *, password: str | None = None
) -> uuid.UUID:
    request = RackCreateRequest.model_validate(nvl72_body(str(site.id), name, password=password))
    async with db.session() as session:
        rack = await provisioning.import_rack(session, site, request, SECRETS)
        return rack.id


async def count(db: Database, model: type[object]) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_provider_is_created_once_under_concurrent_calls(any_database: Database) -> None:
    async def get() -> uuid.UUID:
        async with any_database.session() as session:
            return (await inventory.get_or_create_provider(session, "Acme")).id

    ids = await asyncio.gather(*(get() for _ in range(8)))
    assert len(set(ids)) == 1
    assert await count(any_database, Provider) == 1
    async with any_database.session() as session:
        provider = await inventory.get_provider(session, "ACME")
    assert provider is not None and provider.org == "acme"


async def test_site_names_are_unique_per_provider(any_database: Database) -> None:
    await new_site(any_database, "dc")
    with pytest.raises(Conflict):
        await new_site(any_database, "dc")
    await new_site(any_database, "dc", org="other")
    assert await count(any_database, Site) == 2


async def test_import_writes_rack_trays_and_encrypted_bmcs(any_database: Database) -> None:
    site = await new_site(any_database)
    rack_id = await import_rack(any_database, site, password="hunter2-but-longer")
    async with any_database.session() as session:
        trays = (await inventory.trays_of_racks(session, [rack_id]))[rack_id]
        bmcs = await inventory.bmcs_of_trays(session, [t.id for t in trays])
    assert len(trays) == 35
    assert [t.slot_id for t in trays] == list(range(1, 36))
    assert all(len(b) == 1 for b in bmcs.values())
    stored = bmcs[trays[0].id][0]
    assert stored.password_encrypted and "hunter2" not in stored.password_encrypted
    assert SECRETS.decrypt(stored.password_encrypted) == "hunter2-but-longer"


async def test_database_refuses_a_duplicate_serial(any_database: Database) -> None:
    """The constraint behind the 409, for writers that skip the pre-check."""
    site = await new_site(any_database)
    rack_id = await import_rack(any_database, site)
    async with any_database.session() as session:
        existing = (await inventory.trays_of_racks(session, [rack_id]))[rack_id][0]
    with pytest.raises(IntegrityError):
        async with any_database.session() as session:
            session.add(
                Tray(
                    rack_id=rack_id,
                    site_id=site.id,
                    type="Compute",
                    name="intruder",
                    manufacturer=existing.manufacturer,
                    serial_number=existing.serial_number,
                )
            )
    assert await count(any_database, Tray) == 35


async def test_concurrent_imports_of_one_rack_store_it_once(any_database: Database) -> None:
    site = await new_site(any_database)
    request = RackCreateRequest.model_validate(nvl72_body(str(site.id)))

    async def attempt() -> str:
        try:
            async with any_database.session() as session:
                await provisioning.import_rack(session, site, request, SECRETS)
        except NicoError as exc:
            return f"{exc.status_code}"
        return "created"

    outcomes = await asyncio.gather(*(attempt() for _ in range(4)))
    assert sorted(outcomes) == ["409", "409", "409", "created"]
    assert await count(any_database, Tray) == 35
    assert await count(any_database, Bmc) == 35


async def test_tray_filters_and_totals(any_database: Database) -> None:
    site = await new_site(any_database)
    rack_a = await import_rack(any_database, site, "a")
    await import_rack(any_database, site, "b")
    other = await new_site(any_database, "other")
    await import_rack(any_database, other, "a")

    async def listed(page: Page | None = None, **where: Any) -> tuple[list[str], int]:
        async with any_database.session() as session:
            rows, total = await inventory.list_trays(
                session, site.id, TraySelector(**where), page or Page(limit=100)
            )
        return [f"{rack.name}/{tray.name}" for tray, rack in rows], total

    names, total = await listed()
    assert total == 70 and names[0] == "a/powershelf-01" and names[35] == "b/powershelf-01"
    assert (await listed(rack_id=rack_a))[1] == 35
    assert (await listed(rack_name="b", type=ComponentType.NVLSWITCH))[1] == 9
    assert (await listed(rack_name="a", slot_id=15))[0] == ["a/nvswitch-01"]
    compute = ComponentType.COMPUTE
    assert (await listed(type=compute, component_ids=("a/compute-02", "b/compute-03")))[0] == [
        "a/compute-02",
        "b/compute-03",
    ]
    paged, total = await listed(Page(offset=30, limit=10, order_field="name", descending=True))
    assert total == 70 and len(paged) == 10


async def test_rack_list_filters_and_orders(any_database: Database) -> None:
    site = await new_site(any_database)
    for name in ("r3", "r1", "r2"):
        await import_rack(any_database, site, name)
    async with any_database.session() as session:
        racks, total = await inventory.list_racks(session, site.id, page=Page())
        assert ([r.name for r in racks], total) == (["r1", "r2", "r3"], 3)
        racks, total = await inventory.list_racks(
            session, site.id, names=["r3", "r2"], page=Page(limit=1, order_field="name")
        )
        assert ([r.name for r in racks], total) == (["r2"], 2)
        racks, total = await inventory.list_racks(
            session, site.id, manufacturers=["Nobody"], page=Page()
        )
        assert (racks, total) == ([], 0)


async def test_registered_serials_and_macs(any_database: Database) -> None:
    site = await new_site(any_database)
    rack_id = await import_rack(any_database, site)
    async with any_database.session() as session:
        tray = (await inventory.trays_of_racks(session, [rack_id]))[rack_id][4]
        mac = (await inventory.bmcs_of_trays(session, [tray.id]))[tray.id][0].mac_address
        assert mac is not None
        pairs = [(tray.manufacturer, tray.serial_number), ("Other", tray.serial_number)]
        assert await inventory.registered_serials(session, pairs) == {pairs[0]}
        assert await inventory.registered_macs(session, [mac, "02:00:00:00:00:01"]) == {mac}


async def test_delete_rack_waits_for_active_tasks(any_database: Database) -> None:
    site = await new_site(any_database)
    rack_id = await import_rack(any_database, site)
    async with any_database.session() as session:
        session.add(
            Task(
                site_id=site.id,
                rack_id=rack_id,
                operation_type="PowerControl",
                operation_code="power_off",
                status="Running",
            )
        )
    with pytest.raises(Conflict):
        async with any_database.session() as session:
            rack = await inventory.get_rack(session, site.id, rack_id)
            assert rack is not None
            await provisioning.delete_rack(session, rack)
    async with any_database.session() as session:
        task = (await session.execute(select(Task))).scalar_one()
        task.status = "Succeeded"
    async with any_database.session() as session:
        rack = await inventory.get_rack(session, site.id, rack_id)
        assert rack is not None
        await provisioning.delete_rack(session, rack)
    assert (await count(any_database, Tray), await count(any_database, Bmc)) == (0, 0)
    assert await count(any_database, Task) == 1


async def test_delete_site_only_when_empty(any_database: Database) -> None:
    site = await new_site(any_database)
    await import_rack(any_database, site)
    with pytest.raises(Conflict):
        async with any_database.session() as session:
            await provisioning.delete_site(session, site)
    empty = await new_site(any_database, "empty")
    async with any_database.session() as session:
        await provisioning.delete_site(session, empty)
    async with any_database.session() as session:
        assert await inventory.get_site(session, empty.id) is None
        assert await inventory.get_site(session, site.id) is not None
