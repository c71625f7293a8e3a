"""Upstream clients send `overrideReadinessCheck` and `overrideVersionCheck`: every
operation body accepts them (only firmware uses `overrideVersionCheck`, docs/firmware.md),
while a misspelt field is still a 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from nico.services import Services
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE, count_tasks

UPSTREAM_FLAGS = {"overrideReadinessCheck": True, "overrideVersionCheck": True}

# (method, path template, body beyond siteId and the flags)
OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("PATCH", "/rack/{rack}/power", {"state": "on"}),
    ("PATCH", "/rack/power", {"state": "on", "filter": {"names": ["rack-01"]}}),
    ("PATCH", "/tray/{tray}/power", {"state": "on"}),
    ("PATCH", "/tray/power", {"state": "on", "filter": {"rackName": "rack-01"}}),
    ("PATCH", "/rack/{rack}/firmware", {"version": "2.0.0"}),
    ("PATCH", "/rack/firmware", {"version": "2.0.0", "all": True}),
    ("PATCH", "/tray/{tray}/firmware", {"version": "2.0.0"}),
    ("PATCH", "/tray/firmware", {"version": "2.0.0", "filter": {"rackName": "rack-01"}}),
    ("POST", "/rack/{rack}/bringup", {}),
    ("POST", "/rack/bringup", {"all": True}),
]


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services)


def request_of(
    operation: tuple[str, str, dict[str, Any]], rack: MadeRack, extra: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    method, template, fields = operation
    path = BASE + template.format(rack=rack.rack_id, tray=rack.trays["Compute"][0])
    return method, path, {"siteId": str(rack.site_id), **fields, **extra}


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
async def test_upstream_override_flags_are_accepted(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    rack: MadeRack,
    operation: tuple[str, str, dict[str, Any]],
) -> None:
    method, path, body = request_of(operation, rack, UPSTREAM_FLAGS)
    response = await client.request(method, path, json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert len(response.json()["taskIds"]) == 1


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
async def test_a_misspelt_flag_is_still_refused(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    operation: tuple[str, str, dict[str, Any]],
) -> None:
    method, path, body = request_of(operation, rack, {"overrideVersionChek": True})
    response = await client.request(method, path, json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {"overrideVersionChek": "is not a known field"}
    assert await count_tasks(services) == 0
