"""The Alembic migrations build exactly the schema the models describe, on both databases."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select, text
from sqlalchemy import bindparam as sa_bindparam

from nico.store import observations as obs
from nico.store.db import Database, alembic_config
from nico.store.history import SYNC
from nico.store.models import (
    Base,
    Provider,
    Site,
    Task,
    TaskRackCount,
    TaskTray,
    TaskTrayCount,
    Tray,
)
from nico.store.tasks import TaskQuery, insert_tasks, list_tasks
from tests.store.test_observations import _at, _power, _trays
from tests.store.test_scope_counts import _row, assert_scopes_exact
from tests.support.task_counts import STATUSES, make_site


async def test_migrated_schema_matches_models(any_database: Database) -> None:
    def diff(sync_conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with any_database.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_migrate_is_idempotent(any_database: Database) -> None:
    await any_database.migrate()
    await any_database.migrate()


async def test_task_list_migration_backfills_tray_links(any_database: Database) -> None:
    """A database with history from before revision 0002 keeps listing it by tray."""
    site_id, task_id, tray_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rack_id = uuid.uuid4()
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    def downgrade_and_fill(sync_conn):  # type: ignore[no-untyped-def]
        command.downgrade(alembic_config(sync_conn), "0001")
        tasks, links = Task.__table__, TaskTray.__table__
        sync_conn.execute(
            Provider.__table__.insert(),
            {"id": site_id, "org": "mig", "name": "p", "created": created, "updated": created},
        )
        sync_conn.execute(
            Site.__table__.insert(),
            {
                "id": site_id,
                "provider_id": site_id,
                "name": "s",
                "description": "",
                "flow_enabled": True,
                "created": created,
                "updated": created,
            },
        )
        sync_conn.execute(
            text(
                "INSERT INTO tasks (id, site_id, rack_id, operation_type, operation_code,"
                " description, status, message, information, targets, conflict_strategy,"
                " created, updated) VALUES (:id, :site, :rack, 'PowerControl', 'power_on',"
                " '', 'Succeeded', '', '{}', '{}', 'reject', :created, :created)"
            ).bindparams(
                sa_bindparam("id", task_id, type_=tasks.c.id.type),
                sa_bindparam("site", site_id, type_=tasks.c.site_id.type),
                sa_bindparam("rack", rack_id, type_=tasks.c.rack_id.type),
                sa_bindparam("created", created, type_=tasks.c.created.type),
            )
        )
        sync_conn.execute(
            text("INSERT INTO task_trays (task_id, tray_id) VALUES (:task, :tray)").bindparams(
                sa_bindparam("task", task_id, type_=links.c.task_id.type),
                sa_bindparam("tray", tray_id, type_=links.c.tray_id.type),
            )
        )
        command.upgrade(alembic_config(sync_conn), "head")

    async with any_database.engine.begin() as conn:
        await conn.run_sync(downgrade_and_fill)
    async with any_database.session() as session:
        rows, total = await list_tasks(
            session, TaskQuery(site_id=site_id, tray_id=tray_id), offset=0, limit=20
        )
        link = await session.get(TaskTray, (task_id, tray_id))
        # 0005 counted the existing task; 0006 copied its finished status onto the link.
        _, site_total = await list_tasks(session, TaskQuery(site_id=site_id), offset=0, limit=1)
        finished, finished_total = await list_tasks(
            session,
            TaskQuery(site_id=site_id, tray_id=tray_id, statuses=("Succeeded",)),
            offset=0,
            limit=20,
        )
        # 0009 counted it for its rack and its tray (the lists' totals read those).
        _, rack_total = await list_tasks(
            session, TaskQuery(site_id=site_id, rack_id=rack_id), offset=0, limit=1
        )
        _, tray_succeeded = await list_tasks(
            session,
            TaskQuery(site_id=site_id, tray_id=tray_id, statuses=("Succeeded", "Failed")),
            offset=0,
            limit=1,
        )
    assert (rack_total, tray_succeeded) == (1, 1)
    assert ([t.id for t in rows], total) == ([task_id], 1)
    assert link is not None and (link.site_id, link.created) == (site_id, created)
    assert link.finished_status == "Succeeded"
    assert site_total == 1
    assert ([t.id for t in finished], finished_total) == ([task_id], 1)


async def test_tray_power_migration_shows_what_each_tray_observation_shows(
    any_database: Database,
) -> None:
    """A tray whose `powerState` was written before observations were kept (an old `On`
    with no read behind it) reads `Unknown` like its `GET /tray/{id}/power` after 0008;
    trays with an observation keep what it shows."""
    trays = await _trays(any_database)
    never, off, failed, firmware_only = trays[:4]
    await _power(any_database, [obs.PowerReading(off.id, _at(0), state="Off")])
    await _power(any_database, [obs.PowerReading(failed.id, _at(0), error="BMC unreachable")])
    async with any_database.session() as session:
        await obs.record_firmware(
            session, [obs.FirmwareReading(firmware_only.id, _at(0), version="1.0.0")], SYNC
        )

    def downgrade_fill_upgrade(sync_conn):  # type: ignore[no-untyped-def]
        command.downgrade(alembic_config(sync_conn), "0007")
        # Values written by the engine before observations were kept.
        stale = [never.id, failed.id, firmware_only.id]
        sync_conn.execute(
            Tray.__table__.update().where(Tray.id.in_(stale)).values(power_state="On")
        )
        command.upgrade(alembic_config(sync_conn), "head")

    async with any_database.engine.begin() as conn:
        await conn.run_sync(downgrade_fill_upgrade)
    async with any_database.session() as session:
        shown = dict((await session.execute(select(Tray.id, Tray.power_state))).all())
    assert shown[never.id] == "Unknown"  # never read: nothing says On
    assert shown[off.id] == "Off"
    assert shown[failed.id] == "Unknown"  # the last read failed
    assert shown[firmware_only.id] == "Unknown"  # its power was never read
    assert {shown[t.id] for t in trays[4:]} == {"Unknown"}


async def test_settled_counts_migration_moves_active_tasks_to_the_live_count(
    any_database: Database,
) -> None:
    """0009's counters counted every status; after 0011 they hold settled tasks only and
    every rack and tray total (active ones included) still equals the rows. Downgrading
    puts the active tasks' counts back."""
    site_id = await make_site(any_database)

    def active_rows(sync_conn: Connection) -> int:
        return sum(
            sync_conn.execute(
                select(func.count())
                .select_from(table)
                .where(table.status.in_(("Pending", "Waiting", "Running")))
            ).scalar_one()
            for table in (TaskRackCount, TaskTrayCount)
        )

    def to(revision: str) -> Callable[[Connection], int]:
        def run(sync_conn: Connection) -> int:
            if revision == "head":
                command.upgrade(alembic_config(sync_conn), revision)
            else:
                command.downgrade(alembic_config(sync_conn), revision)
            return active_rows(sync_conn)

        return run

    async with any_database.engine.begin() as conn:
        assert await conn.run_sync(to("0010")) == 0
    # Written under 0009's triggers: every status counted, active ones too.
    async with any_database.session() as session:
        await insert_tasks(session, [_row(site_id, s, i) for i, s in enumerate(STATUSES * 3)])
    async with any_database.engine.begin() as conn:
        assert await conn.run_sync(active_rows) > 0
        assert await conn.run_sync(to("head")) == 0
    await assert_scopes_exact(any_database, site_id)

    async with any_database.engine.begin() as conn:
        assert await conn.run_sync(to("0010")) > 0
        rack_sum = await conn.scalar(select(func.sum(TaskRackCount.n)))
        tray_sum = await conn.scalar(select(func.sum(TaskTrayCount.n)))
        tasks = await conn.scalar(select(func.count()).select_from(Task))
        links = await conn.scalar(select(func.count()).select_from(TaskTray))
        assert (rack_sum, tray_sum) == (tasks, links)
        assert await conn.run_sync(to("head")) == 0
    await assert_scopes_exact(any_database, site_id)
