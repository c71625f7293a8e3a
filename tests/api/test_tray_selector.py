"""`GET /tray` and an operation's `filter` are one selector: the same rules and messages
(each naming the field the way its caller spells it) and the same trays picked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from nico.services import Services
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE, add_rack, count_tasks, load_task

INVALID = "Failed to validate request data"
UNKNOWN = "00000000-0000-0000-0000-000000000001"
# Query name -> body name (upstream's TrayFilter says ids/componentIds).
BODY_NAMES = {"id": "ids", "componentId": "componentIds"}


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    made = await make_site_with_rack(services)
    await add_rack(services, made.site_id, "rack-02")
    return made


def as_body(params: dict[str, Any]) -> dict[str, Any]:
    return {BODY_NAMES.get(k, k): v for k, v in params.items()}


def in_body_terms(text: str) -> str:
    return text.replace("id/componentId", "ids/componentIds").replace(
        "when componentId", "when componentIds"
    )


async def both_answers(
    client: httpx.AsyncClient, auth: dict[str, str], rack: MadeRack, params: dict[str, Any]
) -> tuple[httpx.Response, httpx.Response]:
    site = str(rack.site_id)
    query = {"siteId": site, "pageSize": 100, **params}
    listed = await client.get(f"{BASE}/tray", params=query, headers=auth)
    body = {"siteId": site, "state": "on", "filter": as_body(params)}
    operated = await client.patch(f"{BASE}/tray/power", json=body, headers=auth)
    return listed, operated


@pytest.mark.parametrize(
    "params",
    [
        {"rackId": "rack-01"},
        {"id": ["nope", UNKNOWN]},
        {"rackId": UNKNOWN, "rackName": "rack-01"},
        {"rackName": "rack-01", "id": [UNKNOWN]},
        {"rackName": "rack-01", "type": "Compute", "componentId": ["x"]},
        {"componentId": ["x"]},
        {"type": "Compute", "componentId": [" "]},
        {"rackName": "rack-01", "slotId": -1},
        {"rackName": "rack-01", "slotId": 10**20},
        {"slotId": 3},
        {"rackId": "x", "type": "GPU", "slotId": -2},
    ],
    ids=lambda p: "&".join(sorted(p)),
)
async def test_the_same_mistake_gets_the_same_answer(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    params: dict[str, Any],
) -> None:
    listed, operated = await both_answers(client, auth, rack, params)
    assert (listed.status_code, operated.status_code) == (400, 400), operated.text
    query_data = listed.json()["data"]
    body_data = operated.json()["data"]
    expected_body = {
        f"filter.{BODY_NAMES.get(k, k)}": in_body_terms(v)
        for k, v in query_data.items()
        # The operation filter takes operable types only; its list says so.
        if k != "type"
    }
    assert {k: v for k, v in body_data.items() if k != "filter.type"} == expected_body
    assert listed.json()["message"].startswith(INVALID + ": ")
    assert operated.json()["message"].startswith(INVALID + ": ")
    assert await count_tasks(services) == 0


@pytest.mark.parametrize(
    "params",
    [
        {"rackName": "rack-01", "type": "nvswitch"},
        {"rackName": "rack-02", "slotId": 1},
        {"type": "PowerShelf"},
        {"type": "Compute", "componentId": ["rack-01/compute-03", "rack-02/compute-04"]},
    ],
    ids=lambda p: "&".join(sorted(p)),
)
async def test_the_same_filter_picks_the_same_trays(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    params: dict[str, Any],
) -> None:
    listed, operated = await both_answers(client, auth, rack, params)
    assert (listed.status_code, operated.status_code) == (200, 200), operated.text
    targeted: set[str] = set()
    for task_id in operated.json()["taskIds"]:
        task = await load_task(services, task_id)
        targeted |= {t for ids in task.targets.values() for t in ids}
    assert targeted == {t["id"] for t in listed.json()}
    assert targeted
