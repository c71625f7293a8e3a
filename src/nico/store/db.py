"""Async engine, sessions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from nico.private_files import create_private_sqlite_file

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant: replicas starting together on PostgreSQL migrate one after another.
MIGRATION_LOCK_KEY = 0x6E69636F  # "nico"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic config pointing at the packaged migrations; no ini file needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


class Database:
    """One async engine and its session factory."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                create_private_sqlite_file(Path(database))
            # Writers wait for the lock instead of failing at once.
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._kwargs = kwargs
        self._reads: AsyncEngine | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read-only statement (a list's guard, page and total).

        On PostgreSQL it comes from a second, autocommit pool: a connection of the main
        pool costs five round trips around the statement (the pre-ping's BEGIN, `;`,
        ROLLBACK, then BEGIN and ROLLBACK around the statement); an autocommit one costs
        the ping alone. One statement is one snapshot, so nothing is lost. SQLite opens no
        transaction for a SELECT anyway, so it uses the main engine."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                yield conn
            return
        if self._reads is None:
            self._reads = create_async_engine(
                self.url, isolation_level="AUTOCOMMIT", **self._kwargs
            )
        async with self._reads.connect() as conn:
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on error."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent). On PostgreSQL a
        transaction-scoped advisory lock makes concurrent starters wait their turn
        instead of racing to create the same tables."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            await conn.run_sync(_upgrade_head)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._reads is not None:
            await self._reads.dispose()


def _upgrade_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
