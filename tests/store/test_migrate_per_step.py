"""`Database.migrate` commits each migration on its own: a failed one keeps the ones before
it, a finished one's locks go at its commit, and starters on PostgreSQL still take turns."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from nico.store.db import MIGRATION_LOCK_KEY, Database, UnknownSchema, alembic_config
from nico.store.tasks import insert_tasks
from tests.store.test_observations import _trays
from tests.support import postgres
from tests.support.task_counts import make_row, make_site

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _downgrade(db: Database, revision: str) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def _versions(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        rows = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
        return [row[0] for row in rows]


async def _indexes(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        found = await conn.run_sync(lambda sync: inspect(sync).get_indexes(table))
        return {index["name"] for index in found}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _until_waiting(probe: AsyncConnection, waiting: str, upgrade: asyncio.Task[None]) -> None:
    """Poll `waiting` (a count of lock waits) on `probe` until it is non-zero: the upgrade
    is then blocked where the test wants it. Fails after 30 s or if the upgrade ends."""
    deadline = time.monotonic() + 30
    while (await probe.exec_driver_sql(waiting)).scalar_one() == 0:
        assert time.monotonic() < deadline and not upgrade.done()
        await probe.rollback()
        await asyncio.sleep(0.05)


@pytest.fixture
async def fresh_postgres() -> AsyncIterator[str]:
    url = await postgres.create_database()
    yield url
    await postgres.drop_database(url)


async def test_a_failed_migration_keeps_the_ones_before_it_and_the_next_start_resumes(
    any_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """0007 -> head where 0010 fails on its second index (one an operator made by hand
    under that name): 0008 and 0009 stay applied, the schema says 0009, 0010's first index
    went back with it, and the next start applies 0010 and what follows."""
    db = any_database
    await _downgrade(db, "0007")
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE INDEX ix_operation_ledger_created_key ON operation_ledger (key)"
        )
    caplog.set_level(logging.INFO, logger="nico.store")

    with pytest.raises(DBAPIError):
        await db.migrate()

    assert await _versions(db) == ["0009"]
    assert {"task_rack_counts", "task_tray_counts"} <= await _tables(db)  # 0009 kept
    assert "ix_idempotency_keys_created_id" not in await _indexes(db, "idempotency_keys")
    if not db.is_sqlite:  # the failed upgrade let go of the migration lock
        other = create_async_engine(db.url)
        try:
            async with other.connect() as conn:
                took = await conn.exec_driver_sql(
                    f"SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY})"
                )
                assert took.scalar_one() is True
                await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
        finally:
            await other.dispose()
    said = [r.getMessage() for r in caplog.records if r.name == "nico.store"]
    assert any(m.startswith("migration 0009: done in ") for m in said), said
    failed = [m for m in said if m.startswith("migration 0010 failed after ")]
    assert len(failed) == 1 and "the schema stays at 0009" in failed[0], said

    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("DROP INDEX ix_operation_ledger_created_key")
    caplog.clear()
    await db.migrate()

    assert await _versions(db) == [HEAD]
    assert "ix_idempotency_keys_created_id" in await _indexes(db, "idempotency_keys")
    assert "ix_operation_ledger_created_key" in await _indexes(db, "operation_ledger")
    started = [r.getMessage() for r in caplog.records if r.name == "nico.store"]
    assert [m.split(" ")[1] for m in started if m.endswith(": started")] == ["0010", "0011"]


async def test_each_migration_logs_its_start_and_its_duration(
    any_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await _downgrade(any_database, "0007")
    caplog.set_level(logging.INFO, logger="nico.store")
    await any_database.migrate()
    said = [r.getMessage() for r in caplog.records if r.name == "nico.store"]
    assert [m.split(" (")[0] for m in said if m.endswith(": started")] == [
        "migration 0008",
        "migration 0009",
        "migration 0010",
        "migration 0011",
    ]
    assert [m.split(":")[0] for m in said if " done in " in m] == [
        "migration 0008",
        "migration 0009",
        "migration 0010",
        "migration 0011",
    ]
    await any_database.migrate()  # at head: nothing more to say
    assert len([r for r in caplog.records if r.name == "nico.store"]) == len(said)


@pytest.mark.postgres
async def test_concurrent_upgrades_apply_each_migration_once(
    fresh_postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two starters upgrading 0007 -> head together both succeed; the migrations ran once
    (0009 counted each existing task once), one after the other."""
    first, second = Database(fresh_postgres), Database(fresh_postgres)
    try:
        await first.migrate()
        site_id = await make_site(first)
        async with first.session() as session:
            await insert_tasks(session, [make_row(site_id, "Succeeded") for _ in range(5)])
        await _downgrade(first, "0007")
        caplog.set_level(logging.INFO, logger="nico.store")

        await asyncio.gather(first.migrate(), second.migrate())

        assert await _versions(first) == [HEAD]
        async with first.engine.connect() as conn:
            counted = await conn.exec_driver_sql("SELECT SUM(n) FROM task_rack_counts")
            assert counted.scalar_one() == 5
        said = [r.getMessage() for r in caplog.records if r.name == "nico.store"]
        assert [m.split(" (")[0] for m in said if m.endswith(": started")] == [
            "migration 0008",
            "migration 0009",
            "migration 0010",
            "migration 0011",
        ]
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.postgres
async def test_trays_are_writable_once_0008_commits_while_later_migrations_wait(
    fresh_postgres: str,
) -> None:
    """An older worker still writing a task holds 0009 back (CREATE TRIGGER on `tasks`
    waits for it); meanwhile a tray write from another connection goes through at once,
    because 0008's lock on `trays` went with its commit."""
    db = Database(fresh_postgres)
    other = create_async_engine(fresh_postgres)
    try:
        await db.migrate()
        tray = (await _trays(db))[0]
        await _downgrade(db, "0007")
        async with other.connect() as old_worker:
            await old_worker.exec_driver_sql("LOCK TABLE tasks IN ROW EXCLUSIVE MODE")
            upgrade = asyncio.create_task(db.migrate())
            waiting = (
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'tasks'::regclass"
            )
            async with other.connect() as probe:
                await _until_waiting(probe, waiting, upgrade)
                await probe.rollback()
                await probe.exec_driver_sql("SET lock_timeout = '3s'")
                began = time.monotonic()
                await probe.execute(
                    text("UPDATE trays SET power_state = power_state WHERE id = :id"),
                    {"id": tray.id},
                )
                await probe.commit()
                waited = time.monotonic() - began
                version = await probe.exec_driver_sql("SELECT version_num FROM alembic_version")
                assert version.scalar_one() == "0008"
                await probe.rollback()
            assert not upgrade.done()  # 0009 still waits for the old worker
            await old_worker.commit()
        await upgrade
        assert waited < 1.0
        assert await _versions(db) == [HEAD]
    finally:
        await other.dispose()
        await db.dispose()


@pytest.mark.postgres
async def test_0009_deadlocked_by_an_old_workers_prune_is_run_again(
    fresh_postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An older worker's retention prune (task_trays, then tasks) meets 0009 (tasks, then
    task_trays): PostgreSQL cancels one side of the cycle. The upgrade still reaches head,
    running 0009 again when it was the one cancelled."""
    db = Database(fresh_postgres)
    other = create_async_engine(fresh_postgres)
    try:
        await db.migrate()
        site_id = await make_site(db)
        rows = [make_row(site_id, "Succeeded") for _ in range(3)]
        async with db.session() as session:
            await insert_tasks(session, rows)
        await _downgrade(db, "0008")
        caplog.set_level(logging.INFO, logger="nico.store")
        gone = {"id": rows[0]["id"]}
        async with other.connect() as prune:
            await prune.execute(text("DELETE FROM task_trays WHERE task_id = :id"), gone)
            upgrade = asyncio.create_task(db.migrate())
            waiting = (
                "SELECT count(*) FROM pg_locks"
                " WHERE NOT granted AND relation = 'task_trays'::regclass"
            )
            async with other.connect() as probe:
                await _until_waiting(probe, waiting, upgrade)
            try:
                await prune.execute(text("DELETE FROM tasks WHERE id = :id"), gone)
                await prune.commit()
            except DBAPIError:  # the cycle broken on the prune's side: its next sweep retries
                await prune.rollback()
        await upgrade
        assert await _versions(db) == [HEAD]
        said = [r.getMessage() for r in caplog.records if r.name == "nico.store"]
        assert not [m for m in said if " failed after " in m], said
    finally:
        await other.dispose()
        await db.dispose()


async def test_a_schema_from_a_newer_nico_is_refused_not_taken_for_head(
    any_database: Database,
) -> None:
    """A database a newer release migrated (a revision this build has never heard of):
    starting must fail with a message saying so, not carry on as if at head."""
    db = any_database
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_newer'")
    try:
        with pytest.raises(UnknownSchema, match=r"0099_newer.*newer nico"):
            await db.migrate()

        assert await _versions(db) == ["0099_newer"]  # nothing was touched
    finally:  # PostgreSQL's test database is shared by the tests that follow
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": HEAD}
            )


@pytest.mark.postgres
async def test_0011_waits_for_an_old_workers_sweep_and_leaves_no_active_counter_rows(
    fresh_postgres: str,
) -> None:
    """An older worker's counter sweep in flight (it deletes rows and inserts their sum)
    when 0011 removes the rows of active statuses: 0011 must wait for it, or the sweep's
    sum of active rows survives and every unfiltered rack total counts those tasks twice
    for good."""
    from nico.store.scope_counts import rack_total
    from nico.store.task_counts import FOLDED, _compact_postgres

    db = Database(fresh_postgres)
    other = create_async_engine(fresh_postgres)
    try:
        await db.migrate()
        site_id = await make_site(db)
        rack = uuid.uuid4()
        rows = [{**make_row(site_id, "Pending"), "rack_id": rack} for _ in range(3)]
        async with db.session() as session:
            await insert_tasks(session, rows)
        await _downgrade(db, "0010")
        async with db.engine.begin() as conn:  # deltas of 0009's triggers, not yet folded
            await conn.execute(
                text("UPDATE tasks SET status = 'Running' WHERE id IN (:a, :b)"),
                {"a": rows[0]["id"], "b": rows[1]["id"]},
            )
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND (query LIKE 'DELETE FROM task_rack_counts%'"
            " OR query LIKE 'LOCK TABLE task_rack_counts%')"
        )
        async with other.connect() as sweep:
            await sweep.execute(text(_compact_postgres("task_rack_counts", FOLDED[1][1])))
            upgrade = asyncio.create_task(db.migrate())
            async with other.connect() as probe:
                await _until_waiting(probe, waiting, upgrade)
            await sweep.commit()
        await upgrade

        async with db.engine.connect() as conn:
            left = (
                await conn.exec_driver_sql(
                    "SELECT status, n FROM task_rack_counts"
                    " WHERE status IN ('Pending', 'Waiting', 'Running')"
                )
            ).all()
            total = (await conn.execute(rack_total(site_id, rack))).scalar_one()
        assert left == []
        assert total == 3
    finally:
        await other.dispose()
        await db.dispose()
