"""Observed tray state and its history on SQLite and PostgreSQL: what a read stores, what
a failed read shows, when a history row is written, and pages newest first."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from nico.domain import FirmwareComponent
from nico.store import observations as obs
from nico.store.db import Database
from nico.store.history import (
    SYNC,
    HistoryKind,
    HistoryQuery,
    HistorySource,
    Origin,
    append_history,
    history_statements,
    list_history,
)
from nico.store.models import Tray, TrayHistory, utcnow
from tests.store.test_inventory_repo import import_rack, new_site

T0 = utcnow().replace(microsecond=0) - timedelta(hours=1)


async def _trays(db: Database, racks: int = 1) -> list[Tray]:
    site = await new_site(db)
    rack_ids = [await import_rack(db, site, f"rack-{i:02d}") for i in range(racks)]
    async with db.session() as session:
        rows = await session.execute(
            select(Tray).where(Tray.rack_id.in_(rack_ids)).order_by(Tray.rack_id, Tray.slot_id)
        )
        return list(rows.scalars())


async def _tray(db: Database, tray_id: uuid.UUID) -> Tray:
    async with db.session() as session:
        tray = await session.get(Tray, tray_id)
        assert tray is not None
        return tray


async def _power(
    db: Database, readings: list[obs.PowerReading], origin: Origin = SYNC
) -> list[obs.HistoryEntry]:
    async with db.session() as session:
        return await obs.record_power(session, readings, origin)


async def _observed(db: Database, tray_id: uuid.UUID) -> obs.TrayObserved:
    async with db.session() as session:
        return (await obs.observations_of(session, [tray_id]))[tray_id]


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def test_power_reads_of_many_trays_store_state_and_time(any_database: Database) -> None:
    trays = await _trays(any_database)
    readings = [obs.PowerReading(t.id, _at(0), state="On") for t in trays]
    assert await _power(any_database, readings) == []  # first reads are the baseline
    for tray in trays[:3]:
        assert (await _tray(any_database, tray.id)).power_state == "On"
        seen = await _observed(any_database, tray.id)
        assert (seen.power_state, seen.power_observed_at, seen.power_error) == ("On", _at(0), None)


async def test_a_change_writes_one_history_row_with_who_saw_it(any_database: Database) -> None:
    trays = await _trays(any_database)
    tray, other = trays[0], trays[1]
    await _power(any_database, [obs.PowerReading(t.id, _at(0), state="On") for t in trays[:2]])
    task_id = uuid.uuid4()
    origin = Origin(HistorySource.TASK, task_id=task_id, created_by="alice@example.com")
    written = await _power(
        any_database,
        [
            obs.PowerReading(tray.id, _at(1), state="Off"),
            obs.PowerReading(other.id, _at(1), state="On"),  # unchanged: no row
        ],
        origin,
    )
    assert [(e.tray_id, e.from_value, e.to_value) for e in written] == [(tray.id, "On", "Off")]
    async with any_database.session() as session:
        rows, total = await list_history(session, HistoryQuery(tray_id=tray.id), offset=0, limit=10)
    assert total == 1
    row = rows[0]
    assert (row.kind, row.from_value, row.to_value, row.at) == ("power", "On", "Off", _at(1))
    assert (row.task_id, row.created_by, row.source) == (task_id, "alice@example.com", "task")
    assert (row.rack_id, row.site_id) == (tray.rack_id, tray.site_id)
    assert (await _tray(any_database, tray.id)).power_state == "Off"


async def test_a_failed_read_shows_unknown_and_keeps_the_last_good_value(
    any_database: Database,
) -> None:
    tray = (await _trays(any_database))[0]
    await _power(any_database, [obs.PowerReading(tray.id, _at(0), state="On")])
    written = await _power(
        any_database, [obs.PowerReading(tray.id, _at(5), error="BMC unreachable")]
    )
    assert written == []  # not a change of power state
    assert (await _tray(any_database, tray.id)).power_state == "Unknown"
    seen = await _observed(any_database, tray.id)
    assert (seen.power_state, seen.power_observed_at) == ("On", _at(0))
    assert (seen.power_error, seen.power_error_at) == ("BMC unreachable", _at(5))

    # Back, and changed meanwhile: one row from the last good value, error cleared.
    written = await _power(any_database, [obs.PowerReading(tray.id, _at(7), state="Off")])
    assert [(e.from_value, e.to_value) for e in written] == [("On", "Off")]
    seen = await _observed(any_database, tray.id)
    assert (seen.power_state, seen.power_error, seen.power_error_at) == ("Off", None, None)
    assert (await _tray(any_database, tray.id)).power_state == "Off"


async def test_a_read_older_than_the_stored_one_is_dropped(any_database: Database) -> None:
    tray = (await _trays(any_database))[0]
    await _power(any_database, [obs.PowerReading(tray.id, _at(10), state="Off")])
    assert await _power(any_database, [obs.PowerReading(tray.id, _at(9), state="On")]) == []
    assert (await _tray(any_database, tray.id)).power_state == "Off"
    assert (await _observed(any_database, tray.id)).power_observed_at == _at(10)


async def test_readings_of_one_tray_in_a_batch_apply_in_time_order(
    any_database: Database,
) -> None:
    tray = (await _trays(any_database))[0]
    await _power(any_database, [obs.PowerReading(tray.id, _at(0), state="Off")])
    written = await _power(
        any_database,
        [
            obs.PowerReading(tray.id, _at(3), state="On"),
            obs.PowerReading(tray.id, _at(1), state="PoweringOn"),
        ],
    )
    assert [(e.from_value, e.to_value) for e in written] == [
        ("Off", "PoweringOn"),
        ("PoweringOn", "On"),
    ]


async def test_a_deleted_tray_is_skipped(any_database: Database) -> None:
    tray = (await _trays(any_database))[0]
    gone = obs.PowerReading(uuid.uuid4(), _at(0), state="On")
    await _power(any_database, [gone, obs.PowerReading(tray.id, _at(0), state="On")])
    assert (await _tray(any_database, tray.id)).power_state == "On"


def _inventory(bmc: str, bios: str) -> tuple[FirmwareComponent, ...]:
    return (
        FirmwareComponent("BMC", bmc, "BMC_0"),
        FirmwareComponent("BIOS", bios, "BIOS_0"),
        FirmwareComponent("CPLD", "0.9", "CPLD_0"),
    )


async def _firmware(
    db: Database, readings: list[obs.FirmwareReading], origin: Origin = SYNC
) -> list[obs.HistoryEntry]:
    async with db.session() as session:
        return await obs.record_firmware(session, readings, origin)


async def test_firmware_inventory_changes_write_a_row_per_component(
    any_database: Database,
) -> None:
    tray = (await _trays(any_database))[0]
    assert tray.firmware_version == "1.0.0"  # the main version does not change: no row
    first = obs.FirmwareReading(
        tray.id, _at(0), components=_inventory("1.0.0", "2.0"), version="1.0.0"
    )
    assert await _firmware(any_database, [first]) == []
    assert (await _tray(any_database, tray.id)).firmware_version == "1.0.0"
    seen = await _observed(any_database, tray.id)
    assert seen.firmware_inventory == _inventory("1.0.0", "2.0")
    assert seen.firmware_observed_at == _at(0)

    later = obs.FirmwareReading(
        tray.id, _at(1), components=_inventory("1.1.0", "2.1"), version="1.1.0"
    )
    written = await _firmware(any_database, [later])
    assert sorted((e.component, e.from_value, e.to_value) for e in written) == [
        ("BIOS", "2.0", "2.1"),
        ("BMC", "1.0.0", "1.1.0"),
    ]
    assert all(e.kind is HistoryKind.FIRMWARE for e in written)
    assert (await _tray(any_database, tray.id)).firmware_version == "1.1.0"


async def test_firmware_read_error_keeps_the_inventory(any_database: Database) -> None:
    tray = (await _trays(any_database))[0]
    good = obs.FirmwareReading(
        tray.id, _at(0), components=_inventory("1.0.0", "2.0"), version="1.0.0"
    )
    await _firmware(any_database, [good])
    await _firmware(any_database, [obs.FirmwareReading(tray.id, _at(2), error="401 from BMC")])
    seen = await _observed(any_database, tray.id)
    assert seen.firmware_inventory == _inventory("1.0.0", "2.0")
    assert (seen.firmware_error, seen.firmware_error_at) == ("401 from BMC", _at(2))
    assert (await _tray(any_database, tray.id)).firmware_version == "1.0.0"


async def test_a_main_version_change_without_inventory_is_one_row(
    any_database: Database,
) -> None:
    """A task's read of the main version on a tray never inventoried (or a backend that
    lists no inventory) still records the change."""
    tray = (await _trays(any_database))[0]
    before = (await _tray(any_database, tray.id)).firmware_version
    assert before
    task = Origin(HistorySource.TASK, task_id=uuid.uuid4(), created_by="bob")
    written = await _firmware(
        any_database, [obs.FirmwareReading(tray.id, _at(0), version="9.9.9")], task
    )
    assert [(e.component, e.from_value, e.to_value, e.created_by) for e in written] == [
        (None, before, "9.9.9", "bob")
    ]
    assert (await _tray(any_database, tray.id)).firmware_version == "9.9.9"


async def test_history_pages_newest_first_per_tray_and_per_rack(any_database: Database) -> None:
    trays = await _trays(any_database, racks=2)
    rack_a = trays[0].rack_id
    in_a = [t for t in trays if t.rack_id == rack_a][:3]
    in_b = [t for t in trays if t.rack_id != rack_a][:1]
    await _power(any_database, [obs.PowerReading(t.id, _at(0), state="Off") for t in in_a + in_b])
    for minute in range(1, 6):
        state = "On" if minute % 2 else "Off"
        await _power(
            any_database, [obs.PowerReading(t.id, _at(minute), state=state) for t in in_a + in_b]
        )
    async with any_database.session() as session:
        tray_page, tray_total = await list_history(
            session, HistoryQuery(tray_id=in_a[0].id), offset=0, limit=2
        )
        rack_first, rack_total = await list_history(
            session, HistoryQuery(rack_id=rack_a), offset=0, limit=4
        )
        rack_next, _ = await list_history(session, HistoryQuery(rack_id=rack_a), offset=4, limit=4)
        past_end, past_total = await list_history(
            session, HistoryQuery(rack_id=rack_a), offset=100, limit=4
        )
    assert tray_total == 5 and [r.at for r in tray_page] == [_at(5), _at(4)]
    assert rack_total == 15  # three trays of rack A, five changes each; rack B not counted
    ats = [r.at for r in rack_first + rack_next]
    assert ats == sorted(ats, reverse=True) and ats[0] == _at(5)
    assert {r.rack_id for r in rack_first + rack_next} == {rack_a}
    assert len({r.id for r in rack_first + rack_next}) == 8
    assert (past_end, past_total) == ([], 15)


async def test_history_outlives_the_tray(any_database: Database) -> None:
    tray = (await _trays(any_database))[0]
    await _power(any_database, [obs.PowerReading(tray.id, _at(0), state="On")])
    await _power(any_database, [obs.PowerReading(tray.id, _at(1), state="Off")])
    async with any_database.session() as session:
        await session.delete(await session.get(Tray, tray.id))
    async with any_database.session() as session:
        rows = list((await session.execute(select(TrayHistory))).scalars())
    assert [(r.tray_id, r.to_value) for r in rows] == [(tray.id, "Off")]


async def test_history_pages_read_their_index_in_order(any_database: Database) -> None:
    """Years of history: a tray's or rack's page reads its index backwards and stops, no
    scan of the table and no sort, on both databases."""
    site_id = uuid.uuid4()
    racks = [uuid.uuid4() for _ in range(20)]
    trays = {r: [uuid.uuid4() for _ in range(8)] for r in racks}
    entries = [
        obs.HistoryEntry(
            site_id=site_id,
            rack_id=rack,
            tray_id=trays[rack][i % 8],
            kind=HistoryKind.POWER,
            at=_at(-i),
            source=HistorySource.SYNC,
            from_value="On",
            to_value="Off",
        )
        for i in range(3000)
        for rack in [racks[i % 20]]
    ]
    async with any_database.session() as session:
        await append_history(session, entries)
    if any_database.is_sqlite:
        async with any_database.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    else:
        async with any_database.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE tray_history")
    rack = racks[3]
    for query in (
        HistoryQuery(tray_id=trays[rack][2]),
        HistoryQuery(rack_id=rack),
        HistoryQuery(rack_id=rack, kind=HistoryKind.POWER),
    ):
        page, count = history_statements(query, offset=0, limit=20)
        for statement in (page.add_columns(count.scalar_subquery()), count):
            async with any_database.engine.connect() as conn:
                sql = str(
                    statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                )
                prefix = "EXPLAIN QUERY PLAN " if any_database.is_sqlite else "EXPLAIN "
                plan = "\n".join(
                    str(r[-1]) for r in (await conn.exec_driver_sql(prefix + sql)).all()
                )
            if any_database.is_sqlite:
                assert "SCAN tray_history" not in plan, plan
                assert "TEMP B-TREE" not in plan, plan
            else:
                assert "Seq Scan" not in plan, plan
                assert "Sort" not in plan, plan
        async with any_database.session() as session:
            rows, total = await list_history(session, query, offset=0, limit=20)
        expected = [e for e in entries if e.tray_id == query.tray_id or e.rack_id == query.rack_id]
        assert total == len(expected)
        assert [r.at for r in rows] == sorted((e.at for e in expected), reverse=True)[:20]
