"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nico.store.db import Database
from nico.store.models import Base


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
