"""The operation ledger on SQLite and PostgreSQL: intents, acceptance, forgetting."""

from __future__ import annotations

import uuid

from nico.engine import ledger
from nico.store.db import Database


async def test_an_intent_becomes_acceptance_and_only_an_intent_is_forgotten(
    any_database: Database,
) -> None:
    tray = str(uuid.uuid4())
    key = f"{uuid.uuid4()}/stage-1/step-0/{tray}/main"
    async with any_database.session() as session:
        assert await ledger.lookup(session, key) is None
        await ledger.intend(session, key, tray, "power", {"code": "cold_reset"})
        await ledger.intend(session, key, tray, "power", {"code": "cold_reset"})  # kept once
    async with any_database.session() as session:
        assert await ledger.lookup(session, key) == ledger.Entry({"code": "cold_reset"}, False)
        assert await ledger.recorded(session, key) is None  # intended is not accepted
        await ledger.forget(session, key)
        assert await ledger.lookup(session, key) is None
        await ledger.intend(session, key, tray, "power", {"code": "cold_reset"})
        await ledger.record(session, key, tray, "power", {"code": "cold_reset"})
    async with any_database.session() as session:
        assert await ledger.lookup(session, key) == ledger.Entry({"code": "cold_reset"}, True)
        await ledger.forget(session, key)  # an accepted command is never forgotten
        assert await ledger.recorded(session, key) == {"code": "cold_reset"}
        assert await ledger.count_for_tray(session, uuid.UUID(tray), "power") == 1


async def test_a_command_accepted_without_an_intent_is_recorded_once(
    any_database: Database,
) -> None:
    tray = str(uuid.uuid4())
    key = f"{uuid.uuid4()}/stage-1/step-0/{tray}/main"
    async with any_database.session() as session:
        await ledger.record(session, key, tray, "firmware", {"job_id": "j1"})
        await ledger.record(session, key, tray, "firmware", {"job_id": "j1"})  # a racing repeat
    async with any_database.session() as session:
        assert await ledger.recorded(session, key) == {"job_id": "j1"}
        assert await ledger.count_for_tray(session, uuid.UUID(tray), "firmware") == 1


async def test_many_acceptances_in_one_statement_turn_intents_into_acceptance(
    any_database: Database,
) -> None:
    trays = [str(uuid.uuid4()) for _ in range(3)]
    keys = [f"{uuid.uuid4()}/stage-1/step-0/{t}/main" for t in trays]
    async with any_database.session() as session:
        await ledger.intend(session, keys[0], trays[0], "power", {"code": "restart"})
    async with any_database.session() as session:
        await ledger.record_many(
            session,
            [(k, t, "power", {"code": "restart"}) for k, t in zip(keys, trays, strict=True)]
            + [(keys[1], trays[1], "power", {"code": "restart", "again": True})],
        )
    async with any_database.session() as session:
        found = await ledger.lookup_many(session, [*keys, "never-sent"])
    assert found[keys[0]] == ledger.Entry({"code": "restart"}, True)  # the intent, accepted
    assert found[keys[1]] == ledger.Entry({"code": "restart", "again": True}, True)
    assert found[keys[2]].accepted and "never-sent" not in found
