"""Key retention's walks read an index in their own order and stop after the batch, on
both databases: the ledger and the Idempotency-Keys hold years of rows, and a pass must
cost the rows it reads, not the table.

Seeds a few thousand ledger entries and keys, asks each database for its plan of a first
batch and of a batch resumed past a position, fails on a full scan or a sort, and checks
each batch against the rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert

from nico.engine import ledger
from nico.store.db import Database
from nico.store.models import IdempotencyKey, OperationLedger, utcnow
from nico.tasks import idempotency
from tests.support.plans import query_plan

ROWS = 3000


async def _seed(db: Database) -> list[datetime]:
    start = utcnow().replace(microsecond=0) - timedelta(days=365)
    times = [start + timedelta(minutes=i // 3) for i in range(ROWS)]  # ties: key/id break them
    task_id = uuid.uuid4()
    async with db.session() as session:
        await session.execute(
            insert(OperationLedger),
            [
                {
                    "key": f"{task_id}/stage-1/step-{i}/{uuid.uuid4()}/main",
                    "tray_id": uuid.uuid4(),
                    "action": "power",
                    "result": {},
                    "created": at,
                    "accepted": at,
                }
                for i, at in enumerate(times)
            ],
        )
        await session.execute(
            insert(IdempotencyKey),
            [
                {
                    "id": uuid.uuid4(),
                    "org": "demo",
                    "key": f"k-{i}",
                    "fingerprint": "f" * 64,
                    "task_ids": [str(uuid.uuid4())],
                    "created": at,
                }
                for i, at in enumerate(times)
            ],
        )
    if db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    else:
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE operation_ledger")
            await conn.exec_driver_sql("VACUUM ANALYZE idempotency_keys")
    return times


def _scans(db: Database, plan: str) -> bool:
    if db.is_sqlite:
        return any(
            line.strip().startswith(("SCAN operation_ledger", "SCAN idempotency_keys"))
            for line in plan.splitlines()
        )
    return "Seq Scan" in plan


def _sorts(db: Database, plan: str) -> bool:
    return "TEMP B-TREE" in plan if db.is_sqlite else "Sort" in plan


async def test_retention_walks_read_the_created_indexes_in_order(any_database: Database) -> None:
    times = await _seed(any_database)
    cutoff = times[ROWS // 2]
    async with any_database.session() as session:
        first = await ledger.oldest(session, before=cutoff, after=None, limit=10)
        keys = await idempotency.oldest(session, before=cutoff, after=None, limit=10)
    ledger_after, key_after = first[4], (keys[4].created, keys[4].id)
    for name, statement in (
        ("ledger", ledger.oldest_statement(before=cutoff, after=None, limit=10)),
        ("ledger resumed", ledger.oldest_statement(before=cutoff, after=ledger_after, limit=10)),
        ("keys", idempotency.oldest_statement(before=cutoff, after=None, limit=10)),
        ("keys resumed", idempotency.oldest_statement(before=cutoff, after=key_after, limit=10)),
    ):
        plan = await query_plan(any_database, statement)
        assert not _scans(any_database, plan), f"{name}:\n{plan}"
        assert not _sorts(any_database, plan), f"{name} sorts:\n{plan}"

    async with any_database.session() as session:
        resumed = await ledger.oldest(session, before=cutoff, after=ledger_after, limit=10)
        resumed_keys = await idempotency.oldest(session, before=cutoff, after=key_after, limit=10)
        last = await ledger.oldest(session, before=cutoff, after=None, limit=ROWS)
    assert [at for at, _ in first] == times[:10]
    assert resumed[:5] == first[5:] and [at for at, _ in resumed] == times[5:15]
    assert [k.id for k in resumed_keys[:5]] == [k.id for k in keys[5:]]
    assert len(last) == ROWS // 2  # exactly the rows before the cutoff
