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


async def test_metrics_gauges_read_the_counters(
    any_db_client: httpx.AsyncClient, any_db_services: Services
) -> None:
    """`nico_tasks` and `nico_queue_depth` equal the tasks, through a transition, a prune
    and the sweep's compaction."""
    from datetime import timedelta

    from prometheus_client.parser import text_string_to_metric_families

    from nico.domain import TaskStatus
    from nico.store.models import utcnow
    from nico.store.task_counts import compact_task_counts
    from nico.store.tasks import prune_finished_tasks, transition_task

    db = any_db_services.db
    one = await make_site_with_rack(any_db_services, site_name="metrics-a")
    two = await make_site_with_rack(any_db_services, site_name="metrics-b")
    waiting = make_row(one.site_id, "Waiting")
    rows = [
        waiting,
        make_row(one.site_id, "Waiting"),
        make_row(two.site_id, "Waiting"),
        make_row(one.site_id, "Succeeded", age=30),
        make_row(two.site_id, "Failed", "BringUp"),
    ]
    async with db.session() as session:
        await insert_tasks(session, rows)

    async def gauges() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        got = await any_db_client.get("/metrics")
        assert got.status_code == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(got.text)
            if family.name in ("nico_tasks", "nico_queue_depth")
            for s in family.samples
        }

    def tasks(
        status: str, operation: str = "PowerControl"
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        return ("nico_tasks", (("operation", operation), ("status", status)))

    def queue(site: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return ("nico_queue_depth", (("site", site),))

    assert await gauges() == {
        tasks("Waiting"): 3,
        tasks("Succeeded"): 1,
        tasks("Failed", "BringUp"): 1,
        queue("metrics-a"): 2,
        queue("metrics-b"): 1,
    }
    async with db.session() as session:
        assert await transition_task(session, waiting["id"], TaskStatus.TERMINATED)
        assert await prune_finished_tasks(
            session, one.site_id, created_before=utcnow() - timedelta(days=7), limit=10
        )
    await compact_task_counts(db)
    assert await gauges() == {
        tasks("Waiting"): 2,
        tasks("Terminated"): 1,
        tasks("Failed", "BringUp"): 1,
        queue("metrics-a"): 1,
        queue("metrics-b"): 1,
    }
    await assert_exact(db)
