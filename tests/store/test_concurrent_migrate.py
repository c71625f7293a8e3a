"""Replicas that start together on an empty PostgreSQL database all come up."""

import asyncio

import pytest
from alembic.script import ScriptDirectory

from nico.store.db import Database, alembic_config
from tests.support import postgres


@pytest.mark.postgres
async def test_concurrent_migrations_on_an_empty_database_all_succeed() -> None:
    url = await postgres.create_database()
    databases = [Database(url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(db.migrate() for db in databases), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        async with databases[0].engine.connect() as conn:
            head = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            newest = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert [row[0] for row in head] == [newest]
    finally:
        for db in databases:
            await db.dispose()
        await postgres.drop_database(url)
