"""A throwaway PostgreSQL database per test session.

Uses NICO_TEST_POSTGRES_URL, else the local server on 127.0.0.1:5432 (database `test`).
Under CI (CI=true) an unreachable server is a failure, never a silent skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

T = TypeVar("T")

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop in a worker thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def admin_url() -> str:
    return os.environ.get("NICO_TEST_POSTGRES_URL", DEFAULT_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _execute_autocommit(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def create_database() -> str:
    """Create `nico_test_<random>` and return its URL; skip (or fail in CI) if unreachable."""
    base = admin_url()
    name = f"nico_test_{uuid.uuid4().hex[:10]}"
    try:
        await asyncio.wait_for(_execute_autocommit(base, f'CREATE DATABASE "{name}"'), 15)
    except Exception as exc:
        where = make_url(base).render_as_string(hide_password=True)
        message = f"PostgreSQL at {where} unreachable: {exc!r}"
        if in_ci():
            pytest.fail(message + " (CI=true requires PostgreSQL)", pytrace=False)
        pytest.skip(message)
    return make_url(base).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    await _execute_autocommit(admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
