"""Shared fixtures: settings in a temp dir, SQLite and PostgreSQL databases, the ASGI
app with real services, and real signed tokens."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from nico.api.app import create_app
from nico.auth.tokens import mint_dev_token
from nico.config import Settings
from nico.engine import step_runner
from nico.services import Services, build_services
from nico.store.db import Database
from tests.support import postgres
from tests.support.pgcluster import cluster, pg_services  # noqa: F401 (fixtures)
from tests.support.temporal import (  # noqa: F401 (fixtures)
    private_temporal_env,
    temporal_dev_env,
    temporal_env,
)

DEV_KEY = "test-dev-key-" + "x" * 40
DEMO_ORG = "demo"


@pytest.fixture(autouse=True)
def fast_engine_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step runner's deliberate waits (Sleep actions, retry backoff, waits between
    polls, poll timeouts) at 1/100 of real time, as the time-skipping server skipped
    them when they were workflow timers. Tests that measure those waits ask for
    `real_engine_waits`. Worker subprocesses (durability drills) wait for real."""
    monkeypatch.setattr(step_runner.WAITS, "scale", 0.01)


@pytest.fixture
def real_engine_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step_runner.WAITS, "scale", 1.0)


@pytest.fixture(scope="session")
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def settings(tmp_path: Path, secret_key: str) -> Settings:
    """Fresh settings per test: own data dir and SQLite file, fixed dev key."""
    return Settings(
        data_dir=tmp_path / "nico",
        auth_dev_key=DEV_KEY,
        secret_key=secret_key,
        sim_latency=0.0,
        sim_firmware_duration=0.0,
        seed_demo=False,
        # No background reads unless a test asks (tests/engine/test_state_sync.py).
        state_sync_interval=0.0,
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL database for the whole session (sync, so any fixture or
    test can ask for it from inside the running event loop)."""
    url = postgres.run_blocking(postgres.create_database())
    yield url
    postgres.run_blocking(postgres.drop_database(url))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same store test on SQLite and on PostgreSQL (tables emptied between tests)."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        await db.migrate()
        yield db
        await db.dispose()
        return
    async for db in _emptied_postgres(request.getfixturevalue("postgres_url")):
        yield db


@pytest.fixture
async def postgres_database(postgres_url: str) -> AsyncIterator[Database]:
    """A store test that is about PostgreSQL only (its plan cache, its locks)."""
    async for db in _emptied_postgres(postgres_url):
        yield db


async def _emptied_postgres(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    await db.migrate()
    await truncate_all(db)
    yield db
    await truncate_all(db)
    await db.dispose()


async def truncate_all(db: Database) -> None:
    from nico.store.models import Base

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {names} CASCADE")


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    svc = build_services(settings, create_keys=True)
    await svc.db.migrate()
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client on the real ASGI app (no network)."""
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as c:
        yield c


TokenFactory = Callable[..., str]


@pytest.fixture
def make_token() -> TokenFactory:
    """`make_token(org="demo", roles=["PROVIDER_ADMIN"], ttl=3600)` -> signed dev token."""

    def factory(
        org: str = DEMO_ORG, roles: list[str] | None = None, ttl: int = 3600, key: str = DEV_KEY
    ) -> str:
        return mint_dev_token(key, org, roles or ["PROVIDER_ADMIN"], ttl_seconds=ttl)

    return factory


@pytest.fixture
def auth(make_token: TokenFactory) -> dict[str, str]:
    """Authorization header of a PROVIDER_ADMIN of the demo org."""
    return {"Authorization": f"Bearer {make_token()}"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("NICO_LOG_LEVEL", "WARNING")
