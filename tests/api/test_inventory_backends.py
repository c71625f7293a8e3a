"""The `backend` a rack or tray shows is the one the worker drives it with: the views
ask the backend registry's resolution (tray's own, else its rack's, else NICO_BACKEND)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from nico.services import Services
from nico.store.models import Rack, Tray
from tests.support.inventory import create_site, nvl72_body

BASE = "/v2/org/demo/nico"


async def test_shown_backends_are_the_registrys(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    site = await create_site(client, auth)
    inherit = nvl72_body(site["id"], "inherits")
    inherit.pop("backend", None)
    inherit["components"][0]["backend"] = "redfish"
    own = nvl72_body(site["id"], "own", backend="redfish")
    own["components"][1]["backend"] = "simulator"
    for body in (inherit, own):
        created = await client.post(f"{BASE}/rack", json=body, headers=auth)
        assert created.status_code == 201, created.text

    params: dict[str, Any] = {"siteId": site["id"], "pageSize": 100}
    trays = (await client.get(f"{BASE}/tray", params=params, headers=auth)).json()
    racks = (
        await client.get(
            f"{BASE}/rack", params={**params, "includeComponents": "true"}, headers=auth
        )
    ).json()
    shown = {t["id"]: t["backend"] for t in trays}
    shown_in_racks = {c["id"]: c["backend"] for r in racks for c in r["components"]}
    async with services.db.session() as session:
        expected: dict[str, str] = {}
        for tray_id in shown:
            tray = await session.get(Tray, uuid.UUID(tray_id))
            assert tray is not None
            rack = await session.get(Rack, tray.rack_id)
            expected[tray_id] = services.backends.backend_name(tray, rack)
        rack_expected = {
            str(r.id): services.backends.backend_name(Tray(backend=None), r)
            for r in [await session.get(Rack, uuid.UUID(x["id"])) for x in racks]
            if r is not None
        }
    assert shown == expected == shown_in_racks
    assert sorted(expected.values()).count("redfish") == 35
    assert {r["id"]: r["backend"] for r in racks} == rack_expected
