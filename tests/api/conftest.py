"""The HTTP API on SQLite and on PostgreSQL: what a bad value does to the database (an
integer past its column, a NUL byte PostgreSQL refuses) differs between the two."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from nico.api.app import create_app
from nico.config import Settings
from nico.services import Services
from nico.store.db import Database
from tests.support.tasks import services_on


@pytest.fixture
def any_db_services(any_database: Database, settings: Settings) -> Services:
    """Real services on `any_database` (the test runs once per database)."""
    return services_on(any_database, settings)


@pytest.fixture
async def any_db_client(any_db_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client on the real ASGI app over `any_db_services`. App errors become responses,
    as a real server sends them, so a test sees the 500 a user would."""
    transport = httpx.ASGITransport(app=create_app(any_db_services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as client:
        yield client
