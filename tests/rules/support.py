"""Test helpers for rules: a Flow-enabled site and a rack with trays, written directly
with the store models so rule tests do not depend on the inventory endpoints."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from nico.store.db import Database
from nico.store.models import Provider, Rack, Site, Tray

SEED_004 = Path(__file__).resolve().parents[1] / "contracts" / "004_362c069b7f1e0e7a.txt"
BASE = "/v2/org/demo/nico"


def seed_004_text() -> str:
    return SEED_004.read_text()


def seed_example_rule() -> dict[str, Any]:
    """The example response body of seed 004."""
    match = re.search(r"\*\*Response\*\*\s*```json\n(.*?)```", seed_004_text(), re.S)
    assert match is not None
    example: dict[str, Any] = json.loads(match.group(1))
    return example


async def make_site(
    db: Database, *, org: str = "demo", flow: bool = True, name: str = "site-1"
) -> uuid.UUID:
    """The org's provider (created if absent) and a new site."""
    from sqlalchemy import select

    async with db.session() as session:
        provider = await session.scalar(select(Provider).where(Provider.org == org))
        if provider is None:
            provider = Provider(org=org, name=org)
            session.add(provider)
            await session.flush()
        site = Site(provider_id=provider.id, name=name, flow_enabled=flow)
        session.add(site)
        await session.flush()
        return site.id


RACK_SHAPE = {"Compute": 18, "NVLSwitch": 9, "PowerShelf": 8}


async def make_rack(
    db: Database,
    site_id: uuid.UUID,
    *,
    name: str = "rack-1",
    shape: dict[str, int] | None = None,
) -> uuid.UUID:
    """A rack with trays named `<type>-<n>` (an NVL72 by default)."""
    async with db.session() as session:
        rack = Rack(site_id=site_id, name=name)
        session.add(rack)
        await session.flush()
        for kind, count in (shape or RACK_SHAPE).items():
            for n in range(1, count + 1):
                session.add(
                    Tray(
                        rack_id=rack.id,
                        site_id=site_id,
                        type=kind,
                        name=f"{name}-{kind.lower()}-{n:02d}",
                        serial_number=f"{name}-{kind}-{n}-{uuid.uuid4().hex[:8]}",
                    )
                )
        return rack.id
