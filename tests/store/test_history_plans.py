"""Tray history pages read an index in their own order and stop after the page, on
both databases: a site keeps years of history, and a page must not get slower with it.

Seeds a few thousand rows, asks each database for its plan of every list shape (tray,
rack; kind, since; scoped to the site as the API asks) and fails on a full scan of the
history or a sort for the ORDER BY. Also checks each answer against the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from nico.store.db import Database
from nico.store.history import (
    HistoryEntry,
    HistoryKind,
    HistoryQuery,
    HistorySource,
    append_history,
    history_statements,
    list_history,
    oldest_rack_rows_statement,
    prune_rack_history,
    racks_with_history_before,
    racks_with_history_before_statement,
)
from nico.store.models import utcnow
from tests.support.plans import generic_plan, query_plan, sorts_inside_a_limit

RACKS = 20
TRAYS_PER_RACK = 6
ROWS = 3000


@dataclass
class Seeded:
    site_id: uuid.UUID
    racks: list[uuid.UUID]
    trays: dict[uuid.UUID, list[uuid.UUID]]
    entries: list[HistoryEntry] = field(default_factory=list)


async def _seed(db: Database) -> Seeded:
    site, other = uuid.uuid4(), uuid.uuid4()
    racks = [uuid.uuid4() for _ in range(RACKS)]
    seeded = Seeded(site, racks, {r: [uuid.uuid4() for _ in range(TRAYS_PER_RACK)] for r in racks})
    start = utcnow().replace(microsecond=0) - timedelta(days=365)
    for i in range(ROWS):
        rack = racks[i % RACKS]
        seeded.entries.append(
            HistoryEntry(
                site_id=other if i % 50 == 7 else site,
                rack_id=rack,
                tray_id=seeded.trays[rack][i % TRAYS_PER_RACK],
                kind=HistoryKind.FIRMWARE if i % 7 == 0 else HistoryKind.POWER,
                at=start + timedelta(minutes=i // 3),  # ties: id breaks them
                source=HistorySource.SYNC,
                from_value="Off",
                to_value="On",
            )
        )
    async with db.session() as session:
        await append_history(session, seeded.entries)
    await _analyze(db)
    return seeded


async def _analyze(db: Database) -> None:
    if db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
        return
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE tray_history")


def _cases(s: Seeded) -> dict[str, HistoryQuery]:
    rack = s.racks[3]
    tray = s.trays[rack][2]
    recent = utcnow() - timedelta(days=364)
    return {
        "tray": HistoryQuery(tray_id=tray, site_id=s.site_id),
        "tray kind": HistoryQuery(tray_id=tray, site_id=s.site_id, kind=HistoryKind.FIRMWARE),
        "tray since": HistoryQuery(tray_id=tray, site_id=s.site_id, since=recent),
        "rack": HistoryQuery(rack_id=rack, site_id=s.site_id),
        "rack kind": HistoryQuery(rack_id=rack, site_id=s.site_id, kind=HistoryKind.POWER),
        "rack since": HistoryQuery(rack_id=rack, site_id=s.site_id, since=recent),
    }


def _expected(s: Seeded, q: HistoryQuery) -> list[int]:
    def keep(e: HistoryEntry) -> bool:
        return (
            e.site_id == q.site_id
            and (q.tray_id is None or e.tray_id == q.tray_id)
            and (q.rack_id is None or e.rack_id == q.rack_id)
            and (q.kind is None or e.kind == q.kind)
            and (q.since is None or e.at >= q.since)
        )

    return [i for i, e in enumerate(s.entries) if keep(e)]


def _scans(db: Database, plan: str) -> bool:
    if db.is_sqlite:
        return any(line.startswith("SCAN tray_history") for line in plan.splitlines())
    return "Seq Scan" in plan


def _sorts(db: Database, plan: str) -> bool:
    return "TEMP B-TREE" in plan if db.is_sqlite else "Sort" in plan


async def test_every_history_page_reads_an_index_in_order(any_database: Database) -> None:
    seeded = await _seed(any_database)
    for name, query in _cases(seeded).items():
        page, count = history_statements(query, offset=0, limit=20)
        both = page.add_columns(count.scalar_subquery())
        for what, statement in (("page", page), ("count", count), ("page+total", both)):
            plan = await query_plan(any_database, statement)
            assert not _scans(any_database, plan), f"{name} {what}:\n{plan}"
            if what != "count":
                assert not _sorts(any_database, plan), f"{name} {what} sorts:\n{plan}"


@pytest.mark.postgres
async def test_every_history_page_keeps_one_plan_good_for_any_values(
    postgres_database: Database,
) -> None:
    """On PostgreSQL a page is planned once per read connection for whatever tray, rack,
    time and page come (`Database.read`): that one plan must not scan the history or sort
    it either."""
    seeded = await _seed(postgres_database)
    for name, query in _cases(seeded).items():
        page, count = history_statements(query, offset=0, limit=20)
        plan = await generic_plan(postgres_database, page.add_columns(count.scalar_subquery()), {})
        assert not _scans(postgres_database, plan), f"{name}:\n{plan}"
        assert not sorts_inside_a_limit(plan), f"{name} sorts:\n{plan}"


@pytest.mark.parametrize("page_size", [20, 7])
async def test_every_history_list_answers_newest_first_with_its_total(
    any_database: Database, page_size: int
) -> None:
    seeded = await _seed(any_database)
    for name, query in _cases(seeded).items():
        wanted = _expected(seeded, query)
        async with any_database.session() as session:
            first, total = await list_history(session, query, offset=0, limit=page_size)
            second, _ = await list_history(session, query, offset=page_size, limit=page_size)
        assert total == len(wanted), name
        got = [(r.at, r.tray_id) for r in first + second]
        newest = sorted((seeded.entries[i] for i in wanted), key=lambda e: e.at, reverse=True)
        assert [a for a, _ in got] == [e.at for e in newest[: 2 * page_size]], name
        assert all(r.site_id == seeded.site_id for r in first + second), name


async def test_history_retention_reads_the_rack_index_and_leaves_the_pages_alone(
    any_database: Database,
) -> None:
    """Retention finds the racks with old rows by a skip scan of the rack index and takes
    each rack's oldest range of it: no full scan of the history, no sort. It adds no
    index, so the page plans above hold as they are. Old rows go, the rest stay."""
    seeded = await _seed(any_database)
    cutoff = seeded.entries[ROWS // 2].at
    rack = seeded.racks[5]
    for name, statement in (
        ("racks", racks_with_history_before_statement(cutoff)),
        ("batch", oldest_rack_rows_statement(rack, before=cutoff, limit=10)),
    ):
        plan = await query_plan(any_database, statement)
        assert not _scans(any_database, plan), f"{name}:\n{plan}"
        assert not _sorts(any_database, plan), f"{name} sorts:\n{plan}"

    async with any_database.session() as session:
        assert sorted(await racks_with_history_before(session, cutoff)) == sorted(seeded.racks)
        assert await racks_with_history_before(session, seeded.entries[0].at) == []
        assert await prune_rack_history(session, rack, before=cutoff, limit=10) == 10
    mine = sorted((e.at for e in seeded.entries if e.rack_id == rack), reverse=True)
    async with any_database.session() as session:
        rows, total = await list_history(session, HistoryQuery(rack_id=rack), offset=0, limit=ROWS)
    assert total == len(mine) - 10
    assert [r.at for r in rows] == mine[:-10]  # the ten oldest went, nothing else
