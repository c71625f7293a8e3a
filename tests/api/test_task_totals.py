"""`GET /task`'s total reads the task counters: cancelling a queued task over the API
moves its count at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import httpx

from nico.services import Services
from nico.store.tasks import insert_tasks
from tests.conftest import TokenFactory
from tests.support.inventory import make_site_with_rack
from tests.support.task_counts import assert_exact, make_row
from tests.support.tasks import BASE


async def test_cancel_and_the_site_list_total(
    any_db_client: httpx.AsyncClient, any_db_services: Services, make_token: TokenFactory
) -> None:
    """Cancelling a queued task over the API moves one count from Waiting to Terminated,
    and X-Pagination's total says so at once."""
    made = await make_site_with_rack(any_db_services)
    row = {**make_row(made.site_id, "Waiting"), "rack_id": made.rack_id}
    async with any_db_services.db.session() as session:
        await insert_tasks(session, [row, make_row(made.site_id, "Succeeded")])
    auth = {"Authorization": f"Bearer {make_token()}"}
    site = {"siteId": str(made.site_id)}

    async def total(**params: str) -> int:
        got = await any_db_client.get(f"{BASE}/task", params={**site, **params}, headers=auth)
        assert got.status_code == 200, got.text
        return int(json.loads(got.headers["X-Pagination"])["total"])

    assert (await total(), await total(status="Waiting"), await total(status="Terminated")) == (
        2,
        1,
        0,
    )
    cancelled = await any_db_client.post(f"{BASE}/task/{row['id']}/cancel", json=site, headers=auth)
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "Terminated"
    assert (await total(), await total(status="Waiting"), await total(status="Terminated")) == (
        2,
        0,
        1,
    )
    assert await total(activeOnly="true") == 0
    await assert_exact(any_db_services.db, made.site_id)
