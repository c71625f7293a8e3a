"""A task reads the same in a list as on its own: lists build their items without the
response model (for speed), so every field, null and timestamp must still match what
`GET /task/{id}` (the model) sends, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from nico.services import Services
from nico.store.models import OperationRule, utcnow
from nico.store.tasks import insert_tasks
from tests.conftest import TokenFactory
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import BASE

VALID_REPORT: dict[str, Any] = {
    "version": 1,
    "stages": [
        {
            "number": 1,
            "status": "completed",
            "steps": [
                {
                    "componentType": "Compute",
                    "status": "completed",
                    "totalComponents": 2,
                    "completedComponents": 2,
                    "failedComponents": 0,
                }
            ],
            "startedAt": "2026-01-01T00:00:00Z",
        }
    ],
}
NOT_A_V1_REPORT: dict[str, Any] = {"version": 1, "taskId": "x", "stages": [{"name": "Compute"}]}


async def test_list_items_equal_the_single_task_answer(
    any_db_client: httpx.AsyncClient, any_db_services: Services, make_token: TokenFactory
) -> None:
    made = await make_site_with_rack(any_db_services)
    tray = made.trays["Compute"][0]
    async with any_db_services.db.session() as session:
        rule_id = (await session.execute(select(OperationRule.id).limit(1))).scalar_one()
    now = utcnow().replace(microsecond=654321)
    variants: list[dict[str, Any]] = [
        {"status": "Pending"},
        {"status": "Waiting", "message": "queued behind 1 task", "created_by": "alice"},
        {"status": "Running", "started": now, "rule_id": rule_id, "report": VALID_REPORT},
        {"status": "Succeeded", "started": now, "finished": now, "report": VALID_REPORT},
        {"status": "Failed", "started": now, "finished": now, "report": NOT_A_V1_REPORT},
        {"status": "Terminated", "finished": now, "message": "arrêté — ✓", "description": "ü"},
    ]
    rows = []
    for i, extra in enumerate(variants):
        created = now - timedelta(minutes=i, microseconds=i)
        rows.append(
            {
                "id": uuid.uuid4(),
                "site_id": made.site_id,
                "rack_id": made.rack_id,
                "operation_type": "PowerControl",
                "operation_code": "power_on",
                "targets": {"Compute": [str(tray)]},
                "created": created,
                "updated": created + timedelta(seconds=1),
                **extra,
            }
        )
    async with any_db_services.db.session() as session:
        await insert_tasks(session, rows)

    auth = {"Authorization": f"Bearer {make_token()}"}
    site = {"siteId": str(made.site_id)}
    singles = {}
    for row in rows:
        got = await any_db_client.get(f"{BASE}/task/{row['id']}", params=site, headers=auth)
        assert got.status_code == 200, got.text
        singles[str(row["id"])] = got.json()
    assert "report" in singles[str(rows[2]["id"])]
    assert "report" not in singles[str(rows[4]["id"])]  # not valid v1: left out

    for path in ("/task", f"/rack/{made.rack_id}/task", f"/tray/{tray}/task"):
        for include in ("true", "false"):
            listed = await any_db_client.get(
                BASE + path, params={**site, "includeReport": include}, headers=auth
            )
            assert listed.status_code == 200, listed.text
            items = listed.json()
            assert [i["id"] for i in items] == [str(r["id"]) for r in rows], path
            for item in items:
                single = dict(singles[item["id"]])
                if include == "false":
                    single.pop("report", None)
                assert item == single, (path, include)
                assert list(item) == list(single), "same key order as the model"


def test_rfc3339_is_utc_seconds_whatever_the_input() -> None:
    from datetime import UTC, datetime, timezone

    from nico.schemas.common import rfc3339

    def reference(value: datetime) -> str:
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    plus_two = timezone(timedelta(hours=2))
    for value in (
        datetime(2024, 4, 10, 14, 0, 0, tzinfo=UTC),
        datetime(2024, 4, 10, 14, 0, 0, 999_999, tzinfo=UTC),
        datetime(2024, 1, 1, 1, 30, 5, 123, tzinfo=plus_two),
        datetime(2024, 12, 31, 23, 59, 59),  # naive: taken as UTC
        datetime(999, 2, 3, 4, 5, 6, tzinfo=UTC),
    ):
        assert rfc3339(value) == reference(value), value
    assert rfc3339(datetime(2024, 1, 1, 1, 30, 5, tzinfo=plus_two)) == "2023-12-31T23:30:05Z"


async def test_a_list_shows_a_running_tasks_new_report_at_once(
    any_db_client: httpx.AsyncClient, any_db_services: Services, make_token: TokenFactory
) -> None:
    """Reports are cached by (task, updated): a live report written by the engine moves
    `updated`, so the next list shows it."""
    from nico.store.tasks import save_running_report

    made = await make_site_with_rack(any_db_services)
    now = utcnow()
    row = {
        "id": uuid.uuid4(),
        "site_id": made.site_id,
        "rack_id": made.rack_id,
        "operation_type": "PowerControl",
        "operation_code": "power_on",
        "status": "Running",
        "started": now,
        "report": VALID_REPORT,
        "targets": {"Compute": [str(made.trays["Compute"][0])]},
        "created": now,
        "updated": now,
    }
    async with any_db_services.db.session() as session:
        await insert_tasks(session, [row])
    auth = {"Authorization": f"Bearer {make_token()}"}
    params = {"siteId": str(made.site_id), "includeReport": "true"}

    async def listed_report() -> dict[str, Any]:
        got = await any_db_client.get(f"{BASE}/task", params=params, headers=auth)
        assert got.status_code == 200, got.text
        report: dict[str, Any] = got.json()[0]["report"]
        return report

    assert (await listed_report())["stages"][0]["steps"][0]["completedComponents"] == 2
    newer = {**VALID_REPORT, "stages": [{**VALID_REPORT["stages"][0], "status": "failed"}]}
    newer["stages"][0]["steps"] = [{**newer["stages"][0]["steps"][0], "failedComponents": 2}]
    async with any_db_services.db.session() as session:
        assert await save_running_report(session, row["id"], newer)
    report = await listed_report()
    assert report["stages"][0]["status"] == "failed"
    assert report["stages"][0]["steps"][0]["failedComponents"] == 2


async def test_a_changed_task_is_never_listed_stale(
    any_db_client: httpx.AsyncClient, any_db_services: Services, make_token: TokenFactory
) -> None:
    """List items are cached by every column they show: after a live report save, a
    status transition, and even a write that leaves `updated` alone, each list (tray,
    rack, site; with and without reports) shows the task as it now is."""
    from sqlalchemy import update

    from nico.domain import TaskStatus
    from nico.store.models import Task
    from nico.store.tasks import save_running_report, transition_task

    made = await make_site_with_rack(any_db_services)
    tray = made.trays["Compute"][0]
    now = utcnow()
    row = {
        "id": uuid.uuid4(),
        "site_id": made.site_id,
        "rack_id": made.rack_id,
        "operation_type": "PowerControl",
        "operation_code": "power_on",
        "status": "Running",
        "started": now,
        "message": "powering on",
        "targets": {"Compute": [str(tray)]},
        "created": now,
        "updated": now,
    }
    async with any_db_services.db.session() as session:
        await insert_tasks(session, [row])
    auth = {"Authorization": f"Bearer {make_token()}"}
    site = {"siteId": str(made.site_id)}

    async def listed() -> list[dict[str, Any]]:
        items = []
        for path in ("/task", f"/rack/{made.rack_id}/task", f"/tray/{tray}/task"):
            for include in ("true", "false"):
                got = await any_db_client.get(
                    BASE + path, params={**site, "includeReport": include}, headers=auth
                )
                assert got.status_code == 200, got.text
                [item] = got.json()
                items.append(item)
        return items

    def single_answer() -> Any:
        return any_db_client.get(f"{BASE}/task/{row['id']}", params=site, headers=auth)

    assert {item["message"] for item in await listed()} == {"powering on"}  # now cached

    async with any_db_services.db.session() as session:
        assert await save_running_report(session, row["id"], VALID_REPORT, "2 of 35 on")
    items = await listed()
    assert {item["message"] for item in items} == {"2 of 35 on"}
    assert [("report" in item) for item in items] == [True, False] * 3

    async with any_db_services.db.session() as session:
        assert await transition_task(
            session, row["id"], TaskStatus.SUCCEEDED, message="done", now=now + timedelta(1)
        )
    items = await listed()
    assert {(i["status"], i["message"], i["finished"]) for i in items} == {
        ("Succeeded", "done", items[0]["updated"])
    }
    single = (await single_answer()).json()
    assert items[0] == single and items[1] == {k: v for k, v in single.items() if k != "report"}

    # A write that leaves `updated` as it was (the model bumps it on every UPDATE it
    # writes; raw SQL or a same-microsecond write need not) shows all the same.
    async with any_db_services.db.session() as session:
        await session.execute(
            update(Task)
            .where(Task.id == row["id"])
            .values(description="renamed", updated=now + timedelta(1))
        )
    assert {item["description"] for item in await listed()} == {"renamed"}
