"""Fault-drill storage on SQLite and PostgreSQL: which faults a tray's calls see (tray,
rack, type and site scope), spending limited firings, listing live faults in order,
clearing by scope, and the backend facts the API's simulator-only rule reads."""

from __future__ import annotations

import uuid
from datetime import timedelta

from nico.config import Settings
from nico.store import simulator as sim_store
from nico.store.db import Database
from nico.store.models import SimFault, Tray, utcnow
from nico.store.simulator import FaultKind
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import add_rack, services_on


async def tray(db: Database, made: MadeRack, name: str) -> Tray:
    tray_id = next(i for i, n in made.tray_names.items() if n == name)
    async with db.session() as session:
        found = await session.get(Tray, tray_id)
        assert found is not None
        return found


async def add(db: Database, made: MadeRack, kind: FaultKind, **fields: object) -> uuid.UUID:
    async with db.session() as session:
        fault = SimFault(site_id=made.site_id, kind=kind.value, **fields)
        await sim_store.add_faults(session, [fault])
        return fault.id


async def seen_by(db: Database, target: Tray) -> list[str]:
    """The kinds a call to `target` sees now (limited per-call faults spend a firing)."""
    async with db.session() as session:
        return [f.kind for f in await sim_store.faults_for_call(session, target, utcnow())]


async def test_scope_decides_which_trays_a_fault_reaches(
    any_database: Database, settings: Settings
) -> None:
    services = services_on(any_database, settings)
    rack = await make_site_with_rack(services)
    other = await add_rack(services, rack.site_id, "rack-02")
    compute = await tray(any_database, rack, "compute-07")
    shelf = await tray(any_database, rack, "powershelf-01")
    elsewhere = await tray(any_database, other, "compute-07")

    await add(any_database, rack, FaultKind.SLOW, slow_seconds=1.0)  # the whole site
    await add(any_database, rack, FaultKind.POWER_FAIL, rack_id=rack.rack_id)
    await add(any_database, rack, FaultKind.FIRMWARE_HANG, component_type="Compute")
    await add(any_database, rack, FaultKind.UNREACHABLE, rack_id=rack.rack_id, tray_id=compute.id)
    assert await seen_by(any_database, compute) == [
        "slow",
        "power_fail",
        "firmware_hang",
        "unreachable",
    ]
    assert await seen_by(any_database, shelf) == ["slow", "power_fail"]
    assert await seen_by(any_database, elsewhere) == ["slow", "firmware_hang"]


async def test_limited_per_call_faults_spend_a_firing_per_call_and_then_stop(
    any_database: Database, settings: Settings
) -> None:
    services = services_on(any_database, settings)
    rack = await make_site_with_rack(services)
    shelf = await tray(any_database, rack, "powershelf-01")
    await add(any_database, rack, FaultKind.UNREACHABLE, tray_id=shelf.id, remaining=2)
    # A command fault is only spent by a command, not by every call.
    await add(any_database, rack, FaultKind.POWER_FAIL, tray_id=shelf.id, remaining=1)
    for _ in range(2):
        assert await seen_by(any_database, shelf) == ["unreachable", "power_fail"]
    assert await seen_by(any_database, shelf) == ["power_fail"]
    async with any_database.session() as session:
        live, total = await sim_store.list_live_faults(session, rack.site_id, utcnow())
    assert ([f.kind for f, _ in live], total) == (["power_fail"], 1)


async def test_list_is_live_faults_oldest_first_with_tray_names_and_paging(
    any_database: Database, settings: Settings
) -> None:
    services = services_on(any_database, settings)
    rack = await make_site_with_rack(services)
    now = utcnow()
    names = ("compute-02", "compute-01")
    trays = [await tray(any_database, rack, name) for name in names]
    async with any_database.session() as session:
        # One request's faults share `created`: they list by tray name.
        await sim_store.add_faults(
            session,
            [
                SimFault(
                    site_id=rack.site_id,
                    rack_id=rack.rack_id,
                    tray_id=t.id,
                    kind="unreachable",
                    created=now,
                )
                for t in trays
            ],
        )
    await add(any_database, rack, FaultKind.SLOW, slow_seconds=2.0)
    await add(any_database, rack, FaultKind.UNREACHABLE, expires_at=now - timedelta(seconds=1))
    await add(any_database, rack, FaultKind.POWER_FAIL, remaining=0)
    async with any_database.session() as session:
        rows, total = await sim_store.list_live_faults(session, rack.site_id, utcnow())
        page, _ = await sim_store.list_live_faults(
            session, rack.site_id, utcnow(), offset=1, limit=1
        )
        only, _ = await sim_store.list_live_faults(
            session, rack.site_id, utcnow(), tray_id=trays[0].id
        )
    assert [(f.kind, name) for f, name in rows] == [
        ("unreachable", "compute-01"),
        ("unreachable", "compute-02"),
        ("slow", None),
    ]
    assert total == 3
    assert [name for _, name in page] == ["compute-02"]
    assert [name for _, name in only] == ["compute-02"]


async def test_clearing_by_tray_rack_id_or_site(any_database: Database, settings: Settings) -> None:
    services = services_on(any_database, settings)
    rack = await make_site_with_rack(services)
    compute = await tray(any_database, rack, "compute-01")
    await add(any_database, rack, FaultKind.UNREACHABLE, rack_id=rack.rack_id, tray_id=compute.id)
    one = await add(any_database, rack, FaultKind.SLOW, rack_id=rack.rack_id, slow_seconds=1.0)
    await add(any_database, rack, FaultKind.POWER_STUCK)
    await add(any_database, rack, FaultKind.FIRMWARE_FAIL)
    async with any_database.session() as session:
        assert await sim_store.delete_faults(session, rack.site_id, tray_id=compute.id) == 1
        assert await sim_store.delete_fault(session, rack.site_id, one)
        assert not await sim_store.delete_fault(session, rack.site_id, one)
        assert not await sim_store.delete_fault(session, uuid.uuid4(), uuid.uuid4())
        assert await sim_store.delete_faults(session, rack.site_id, rack_id=rack.rack_id) == 0
        assert await sim_store.delete_faults(session, rack.site_id) == 2


async def test_scope_trays_and_backend_choices(any_database: Database, settings: Settings) -> None:
    services = services_on(any_database, settings)
    rack = await make_site_with_rack(services)
    second = await add_rack(services, rack.site_id, "rack-02")
    async with any_database.session() as session:
        shelves = await sim_store.trays_in_scope(
            session, rack.site_id, rack_id=rack.rack_id, component_type="PowerShelf"
        )
        picked = await sim_store.trays_in_scope(
            session, rack.site_id, tray_ids=[second.tray_ids[0], rack.tray_ids[0]]
        )
        choices = await sim_store.site_backend_choices(session, rack.site_id)
        none = await sim_store.site_backend_choices(session, uuid.uuid4())
    assert [t.name for t, _ in shelves] == [f"powershelf-0{i}" for i in range(1, 9)]
    assert [r.name for _, r in picked] == ["rack-01", "rack-02"]
    assert choices == {(None, "simulator")} and none == set()
