"""`Database.read` on PostgreSQL refuses writes: a read runs again when its connection
dies, so a write that slipped into one could commit twice; instead it fails at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from nico.engine.infra import classify
from nico.store.db import Database
from nico.store.models import Provider

pytestmark = pytest.mark.postgres


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    await database.migrate()
    yield database
    await database.dispose()


async def providers_named(db: Database, prefix: str) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Provider).where(Provider.org.startswith(prefix))
        )
        await session.execute(delete(Provider).where(Provider.org.startswith(prefix)))
    return int(count or 0)


async def test_a_write_inside_a_read_fails_at_once_and_is_never_run_twice(db: Database) -> None:
    prefix = f"read-{uuid.uuid4().hex[:8]}-"
    runs = 0

    async def work(conn: AsyncConnection) -> None:
        nonlocal runs
        runs += 1
        org = f"{prefix}{runs}"
        await conn.execute(insert(Provider).values(id=uuid.uuid4(), org=org, name=org))
        # The connection dies after the write, as when PostgreSQL restarts: a read runs
        # again on a new connection.
        await conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(DBAPIError) as raised:
        await db.read(work)
    # (runs, rows written): without the read-only connections, (2, 2).
    assert (runs, await providers_named(db, prefix)) == (1, 0)
    assert "read-only transaction" in str(raised.value)
    # A bug in the code (answered 500), not the database being down (503).
    assert classify(raised.value) is None


async def test_an_orm_flush_inside_a_read_session_fails(db: Database) -> None:
    prefix = f"read-{uuid.uuid4().hex[:8]}-"

    async def work(session: AsyncSession) -> None:
        session.add(Provider(org=f"{prefix}1", name="p"))
        await session.flush()

    with pytest.raises(DBAPIError, match="read-only transaction"):
        await db.read_session(work)
    assert await providers_named(db, prefix) == 0
