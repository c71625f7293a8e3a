"""Rules in the store, on SQLite and PostgreSQL: the default swap under concurrency,
built-in installation, and resolution precedence."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from nico.domain import OPERATION_CODES, OperationType
from nico.errors import BadRequest
from nico.rules.builtins import builtin_rule
from nico.rules.install import install_builtin_defaults
from nico.rules.resolution import ResolvedRule, resolve_rule
from nico.store import rules as rule_store
from nico.store.db import Database
from nico.store.models import OperationRule
from tests.rules.support import make_rack, make_site

POWER = OperationType.POWER_CONTROL
DEFINITION = {
    "version": "v1",
    "steps": [
        {
            "componentType": "Compute",
            "stage": 1,
            "maxParallel": 0,
            "mainOperation": {"name": "PowerControl"},
        }
    ],
}


async def new_rule(
    db: Database, site_id: uuid.UUID, name: str, code: str = "power_on", *, default: bool = False
) -> uuid.UUID:
    async with db.session() as session:
        rule = await rule_store.create_rule(
            session,
            site_id=site_id,
            name=name,
            description="",
            operation_type=POWER.value,
            operation_code=code,
            rule_definition=DEFINITION,
            is_default=default,
        )
        return rule.id


async def defaults(db: Database, site_id: uuid.UUID, code: str = "power_on") -> list[uuid.UUID]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OperationRule.id).where(
                OperationRule.site_id == site_id,
                OperationRule.operation_code == code,
                OperationRule.is_default.is_(True),
            )
        )
        return list(rows)


async def set_default(db: Database, site_id: uuid.UUID, rule_id: uuid.UUID) -> None:
    async with db.session() as session:
        rule = await rule_store.get_rule(session, site_id, rule_id)
        assert rule is not None
        assert await rule_store.set_default(session, rule) is not None


async def test_twenty_concurrent_set_default_calls_leave_one_default(
    any_database: Database,
) -> None:
    site_id = await make_site(any_database)
    ids = [await new_rule(any_database, site_id, f"rule-{n}") for n in range(20)]
    await asyncio.gather(*(set_default(any_database, site_id, i) for i in ids))
    winners = await defaults(any_database, site_id)
    assert len(winners) == 1 and winners[0] in ids


async def test_create_as_default_swaps_and_set_default_is_idempotent(
    any_database: Database,
) -> None:
    site_id = await make_site(any_database)
    first = await new_rule(any_database, site_id, "first", default=True)
    second = await new_rule(any_database, site_id, "second", default=True)
    assert await defaults(any_database, site_id) == [second]
    await set_default(any_database, site_id, first)
    await set_default(any_database, site_id, first)
    assert await defaults(any_database, site_id) == [first]


async def test_defaults_are_per_site_and_per_code(any_database: Database) -> None:
    site_a = await make_site(any_database, name="a")
    site_b = await make_site(any_database, name="b")
    a = await new_rule(any_database, site_a, "a", default=True)
    b = await new_rule(any_database, site_b, "b", default=True)
    off = await new_rule(any_database, site_a, "off", "power_off", default=True)
    assert await defaults(any_database, site_a) == [a]
    assert await defaults(any_database, site_b) == [b]
    assert await defaults(any_database, site_a, "power_off") == [off]


async def test_install_builtin_defaults_covers_every_code_once(any_database: Database) -> None:
    site_id = await make_site(any_database)
    async with any_database.session() as session:
        await install_builtin_defaults(session, site_id)
    async with any_database.session() as session:
        await install_builtin_defaults(session, site_id)
    async with any_database.session() as session:
        count = await session.scalar(select(func.count()).where(OperationRule.site_id == site_id))
        keys = await rule_store.default_keys(session, site_id)
    expected = {(t.value, c) for t, codes in OPERATION_CODES.items() for c in codes}
    assert keys == expected
    assert count == len(expected)


async def test_install_keeps_an_operator_chosen_default(any_database: Database) -> None:
    site_id = await make_site(any_database)
    mine = await new_rule(any_database, site_id, "mine", default=True)
    async with any_database.session() as session:
        await install_builtin_defaults(session, site_id)
    assert await defaults(any_database, site_id) == [mine]


async def resolve(
    db: Database,
    site_id: uuid.UUID,
    rack_id: uuid.UUID,
    pinned: uuid.UUID | None = None,
    code: str = "power_on",
) -> ResolvedRule:
    async with db.session() as session:
        return await resolve_rule(
            session,
            site_id=site_id,
            rack_id=rack_id,
            operation_type=POWER,
            operation_code=code,
            pinned_rule_id=pinned,
        )


async def test_resolution_precedence(any_database: Database) -> None:
    site_id = await make_site(any_database)
    rack_id = await make_rack(any_database, site_id, shape={"Compute": 1})

    builtin = await resolve(any_database, site_id, rack_id)
    assert (builtin.source, builtin.rule_id) == ("builtin", None)
    assert builtin.definition == builtin_rule(POWER, "power_on").definition

    default = await new_rule(any_database, site_id, "default", default=True)
    assert (await resolve(any_database, site_id, rack_id)).source == "default"

    pinned_to_rack = await new_rule(any_database, site_id, "rack")
    async with any_database.session() as session:
        rule = await rule_store.get_rule(session, site_id, pinned_to_rack)
        assert rule is not None
        await rule_store.associate(session, rack_id, rule)
    by_rack = await resolve(any_database, site_id, rack_id)
    assert (by_rack.source, by_rack.rule_id) == ("rack", pinned_to_rack)

    by_pin = await resolve(any_database, site_id, rack_id, pinned=default)
    assert (by_pin.source, by_pin.rule_id) == ("pinned", default)

    # Another code is untouched by the power_on association and default.
    assert (await resolve(any_database, site_id, rack_id, code="power_off")).source == "builtin"


async def test_a_bad_pin_is_a_400_naming_rule_id(any_database: Database) -> None:
    site_id = await make_site(any_database)
    other_site = await make_site(any_database, name="other")
    rack_id = await make_rack(any_database, site_id, shape={"Compute": 1})
    off_rule = await new_rule(any_database, site_id, "off", "power_off")
    foreign = await new_rule(any_database, other_site, "foreign")
    for pinned in (uuid.uuid4(), foreign, off_rule):
        with pytest.raises(BadRequest) as caught:
            await resolve(any_database, site_id, rack_id, pinned=pinned)
        assert caught.value.data is not None and "ruleId" in caught.value.data
