"""Async engine, sessions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from nico.private_files import create_private_sqlite_file
from nico.store import stalls

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant: replicas starting together on PostgreSQL migrate one after another.
MIGRATION_LOCK_KEY = 0x6E69636F  # "nico"

log = logging.getLogger("nico.store")
# Times one upgrade runs a migration again that PostgreSQL cancelled to break a deadlock.
DEADLOCK_RETRIES = 3

T = TypeVar("T")
# Connections the read pool keeps per process, all of them kept open once made (no
# overflow: an overflow connection is closed when it comes back, so under steady load
# most requests opened a new connection (TCP, startup, statements prepared again) and
# closed it). A request that finds all of them busy waits for one. Five per process
# served 50 connections as fast as fifteen did on the 2-core bench (the API's CPU is the
# limit, not the database's), and holds a third of the server's connections.
READ_POOL_SIZE = 5


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

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work`'s answer, run on a connection for reads only (a GET's site guard and
        lookups, a list's page and total). `work` may run twice, so it must not write;
        on PostgreSQL the connection refuses to.

        On PostgreSQL the connection comes from a second, autocommit pool without the
        pre-ping: a connection of the main pool costs five round trips around the
        statement (the pre-ping's BEGIN, `;`, ROLLBACK, then BEGIN and ROLLBACK around
        the statement), this one the statement alone. Each statement sees its own
        snapshot, as it did in the main pool's READ COMMITTED transactions.
        A connection that died while pooled (PostgreSQL restarted) fails its first
        statement as a disconnect: the pool then drops every connection older than
        that, and `work` runs once more on a fresh one, so the caller gets an answer
        instead of an error. Its connections are opened with
        `default_transaction_read_only`, so a write (or `SELECT ... FOR UPDATE`) in
        `work` fails at once (a 500, never retried) rather than commits, maybe twice.
        They also plan generically (`plan_cache_mode = force_generic_plan`): a statement
        is planned once a connection for any values, where PostgreSQL's default plans a
        list again on every request (planning cost 0.8-1.9 ms against 0.1-0.3 ms of
        executing it); the plan tests check those generic plans.

        SQLite opens no transaction for a SELECT anyway, so it uses the main engine and
        nothing refuses a write; but `work` never commits, so a write is rolled back when
        the connection returns to the pool (and holds the file's write lock until then).
        The caller's time in it is a wait on the database (`stalls.waiting`)."""
        try:
            return await self._read_once(work)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return await self._read_once(work)

    async def read_session(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`read` for the store's ORM functions: `work` gets a session on the read
        connection (no round trips of its own: it never commits, and on PostgreSQL its
        BEGIN and ROLLBACK are no-ops in autocommit). The same rules: `work` may run
        twice and must not write; the rows it returns are detached, with what they
        loaded."""

        async def in_session(conn: AsyncConnection) -> T:
            async with self.sessions(bind=conn) as session:
                return await work(session)

        return await self.read(in_session)

    async def _read_once(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        with stalls.waiting():
            async with self._read_engine().connect() as conn:
                return await work(conn)

    def _read_engine(self) -> AsyncEngine:
        if self.is_sqlite:
            return self.engine
        if self._reads is None:
            connect_args = {
                **self._kwargs.get("connect_args", {}),
                # In the startup packet: no round trip of its own.
                "server_settings": {
                    "default_transaction_read_only": "on",
                    # asyncpg prepares each statement once a connection; a generic plan
                    # is then planned once too, instead of for every request's values.
                    "plan_cache_mode": "force_generic_plan",
                    # A generic plan is costed for a tenth of the rows under a LIMIT it
                    # cannot see: never let that cost JIT-compile a page read (tens of ms).
                    "jit": "off",
                },
            }
            self._reads = create_async_engine(
                self.url,
                isolation_level="AUTOCOMMIT",
                **{**self._kwargs, "pool_pre_ping": False, "connect_args": connect_args},
                pool_size=READ_POOL_SIZE,
                max_overflow=0,
            )
        return self._reads

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on error. The caller's time
        in it (a pool checkout, a lock, the statements, the commit) is a wait on the
        database (`stalls.waiting`): keep anything else (a BMC call, a sleep) outside."""
        with stalls.waiting():
            async with self.sessions() as session:
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent), each migration in a
        transaction of its own: a migration's locks go when it commits, not when the last
        one does, and a failed one leaves the ones before it applied (the next start
        resumes from there). On PostgreSQL a session advisory lock, held across all of
        them, makes concurrent starters wait their turn."""
        async with self.engine.connect() as conn:
            await conn.run_sync(_upgrade_one_at_a_time)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._reads is not None:
            await self._reads.dispose()


class UnknownSchema(RuntimeError):
    """The database was migrated past what this build knows (a newer release, or a
    rollback of nico without one of the schema): refusing to start beats failing later on
    columns this build does not expect."""


def _upgrade_one_at_a_time(connection: Connection) -> None:
    postgres = connection.dialect.name == "postgresql"
    try:
        if postgres:
            # Session-level, unlike a transaction's: it outlives each migration's commit.
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            connection.commit()
        script = ScriptDirectory.from_config(alembic_config())
        scripts = list(script.walk_revisions())
        following = {s.down_revision: s for s in scripts}
        known = {s.revision for s in scripts}
        retries = DEADLOCK_RETRIES
        while True:
            committed = _upgrade_next(connection, following, known, retry=retries > 0)
            if committed is None:
                break
            if not committed:
                retries -= 1
    finally:
        if postgres:
            _unlock(connection)


def _upgrade_next(
    connection: Connection, following: dict[Any, Script], known: set[str], *, retry: bool
) -> bool | None:
    """Apply the oldest pending migration in a transaction of its own: True when it
    committed, False when PostgreSQL cancelled it to break a deadlock and `retry` allows
    running it again, None at head."""
    started = 0.0
    step: Script | None = None
    current: str | None = None
    try:
        with connection.begin():
            if connection.dialect.name == "sqlite":
                # pysqlite opens a transaction only before DML, so a migration's DDL would
                # commit statement by statement. IMMEDIATE takes the write lock before the
                # version is read: two processes on one file cannot apply one migration twice.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            current = MigrationContext.configure(connection).get_current_revision()
            step = following.get(current)
            if step is None:
                if current is not None and current not in known:
                    raise UnknownSchema(
                        f"the database's schema is at migration {current}, which this"
                        " version of nico does not know: a newer nico upgraded it; run that"
                        " version or a newer one"
                    )
                return None
            started = time.monotonic()
            log.info("migration %s (%s): started", step.revision, " ".join(step.doc.split()))
            command.upgrade(alembic_config(connection), step.revision)
    except BaseException as exc:
        if step is not None and retry and isinstance(exc, DBAPIError) and _deadlocked(exc):
            # An older process still running was in a lock cycle with the migration (its
            # retention prune takes task_trays then tasks; 0009 takes tasks then
            # task_trays). The migration alone was rolled back and the other side goes on,
            # so running it again succeeds.
            log.warning(
                "migration %s deadlocked with another transaction after %.2f s and was"
                " rolled back; running it again",
                step.revision,
                time.monotonic() - started,
            )
            return False
        if step is not None:
            log.error(
                "migration %s failed after %.2f s and was rolled back; the schema stays at %s"
                " (the migrations before it are kept) and the next start or `nico db upgrade`"
                " retries it",
                step.revision,
                time.monotonic() - started,
                current or "empty",
            )
        raise
    log.info("migration %s: done in %.2f s", step.revision, time.monotonic() - started)
    return True


def _deadlocked(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "40P01"  # deadlock_detected


def _unlock(connection: Connection) -> None:
    """Release the migration lock. A connection that cannot is closed instead (the server
    drops a session's locks with it), never pooled still holding the lock."""
    try:
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
        connection.commit()
    except BaseException as exc:
        connection.invalidate()
        if not isinstance(exc, Exception):
            raise
        # Closing it released the lock; an error of the migrations (the one worth
        # reading) is still on its way up.
        log.warning("closed the migration connection: it could not release its lock")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
