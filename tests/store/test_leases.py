"""Worker leases on SQLite and PostgreSQL: one holder at a time, also when many claim at
once; renewal by the holder; takeover after it lapses; release."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nico.store.db import Database
from nico.store.leases import claim_lease, release_lease
from nico.store.models import utcnow


async def claim(db: Database, holder: str, ttl: float = 60.0, **kw: object) -> bool:
    async with db.session() as session:
        return await claim_lease(session, "state-sync", holder, ttl, **kw)  # type: ignore[arg-type]


async def test_one_of_many_concurrent_claims_wins(any_database: Database) -> None:
    results = await asyncio.gather(*(claim(any_database, f"worker-{i}") for i in range(8)))
    assert sum(results) == 1
    winner = f"worker-{results.index(True)}"
    assert await claim(any_database, winner)  # renewal
    assert not await claim(any_database, "worker-late")


async def test_a_lapsed_lease_is_taken_over_and_a_released_one_at_once(
    any_database: Database,
) -> None:
    assert await claim(any_database, "a", ttl=60)
    later = utcnow() + timedelta(seconds=61)
    assert await claim(any_database, "b", now=later)  # a stopped renewing
    assert not await claim(any_database, "a", now=later)
    async with any_database.session() as session:
        await release_lease(session, "state-sync", "b")
    assert await claim(any_database, "a")
