"""Task lists of a rack or tray answer from task history, which outlives inventory."""

from __future__ import annotations

import uuid

import httpx

from nico.services import Services
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import BASE, finish


async def test_tasks_of_a_deleted_rack_and_tray_still_list(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)
    site = {"siteId": str(made.site_id)}
    tray = made.trays["Compute"][0]
    submitted = await client.patch(
        f"{BASE}/tray/{tray}/power", json={**site, "state": "on"}, headers=auth
    )
    [task_id] = submitted.json()["taskIds"]
    await finish(services, task_id)
    deleted = await client.delete(f"{BASE}/rack/{made.rack_id}", params=site, headers=auth)
    assert deleted.status_code == 204

    for path in (f"/tray/{tray}/task", f"/rack/{made.rack_id}/task"):
        listed = await client.get(BASE + path, params=site, headers=auth)
        assert listed.status_code == 200, listed.text
        assert [t["id"] for t in listed.json()] == [task_id]
    never_known = await client.get(f"{BASE}/tray/{uuid.uuid4()}/task", params=site, headers=auth)
    assert (never_known.status_code, never_known.json()) == (200, [])


async def test_openapi_says_task_lists_outlive_inventory(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for kind in ("rack", "tray"):
        description = paths[f"/v2/org/{{org}}/nico/{kind}/{{id}}/task"]["get"]["description"]
        assert "Task history outlives inventory" in description
        assert f"deleted (or never known) {kind} answers 200" in description
