"""Task endpoints: one task, the rack / tray / site lists with every query combination,
and cancel in the states that need no running workflow. Bodies are checked against seed
000's Task schema."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from nico.domain import TaskStatus
from nico.schemas.tasks import Task as TaskOut
from nico.services import Services
from nico.store.tasks import save_running_report, transition_task
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.seed000 import assert_valid_task, assert_valid_tasks, example_response
from tests.support.tasks import BASE, add_rack, finish, load_task

REPORT = {
    "version": 1,
    "stages": [
        {
            "number": 1,
            "status": "running",
            "steps": [
                {
                    "componentType": "PowerShelf",
                    "status": "running",
                    "totalComponents": 8,
                    "completedComponents": 3,
                    "startedAt": "2026-01-01T00:00:00Z",
                }
            ],
            "startedAt": "2026-01-01T00:00:00Z",
        },
        {
            "number": 2,
            "status": "pending",
            "steps": [{"componentType": "Compute", "status": "pending", "totalComponents": 18}],
        },
    ],
}


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services)


async def submit(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: dict[str, Any]
) -> str:
    response = await client.patch(BASE + path, json=body, headers=auth)
    assert response.status_code == 200, response.text
    [task_id] = response.json()["taskIds"]
    return str(task_id)


async def tray_power(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    rack: MadeRack,
    tray: uuid.UUID,
    state: str = "on",
    **extra: Any,
) -> str:
    body = {"siteId": str(rack.site_id), "state": state, **extra}
    return await submit(client, auth, f"/tray/{tray}/power", body)


async def start_running(services: Services, task_id: str, report: dict[str, Any]) -> None:
    async with services.db.session() as session:
        assert await transition_task(session, uuid.UUID(task_id), TaskStatus.RUNNING)
        assert await save_running_report(session, uuid.UUID(task_id), report, "Stage 1/2")


def test_seed_example_round_trips_through_the_wire_model() -> None:
    for item in example_response():
        assert TaskOut.model_validate(item).body() == item


async def test_get_task_has_seed_shape_and_report_once_produced(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    task_id = await tray_power(client, auth, rack, rack.trays["Compute"][0])
    params = {"siteId": str(rack.site_id)}
    for path in (f"/task/{task_id}", f"/rack/task/{task_id}"):
        response = await client.get(BASE + path, params=params, headers=auth)
        assert response.status_code == 200
        body = response.json()
        assert_valid_task(body)
        assert body["status"] == "Pending" and body["started"] is None
        assert body["finished"] is None and "report" not in body
        assert body["ruleId"] is not None

    await start_running(services, task_id, REPORT)
    body = (await client.get(f"{BASE}/task/{task_id}", params=params, headers=auth)).json()
    assert_valid_task(body)
    assert body["status"] == "Running" and body["message"] == "Stage 1/2"
    assert body["started"].endswith("Z") and body["report"] == REPORT


async def test_get_task_errors(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    task_id = await tray_power(client, auth, rack, rack.trays["Compute"][0])
    other = await make_site_with_rack(services)
    cases = [
        (f"/task/{uuid.uuid4()}", {"siteId": str(rack.site_id)}, 404, "Task not found"),
        (f"/task/{task_id}", {"siteId": str(other.site_id)}, 404, "Task not found"),
        ("/task/nope", {"siteId": str(rack.site_id)}, 400, "Invalid Task ID specified in URL"),
        (f"/task/{task_id}", {}, 400, "siteId query parameter is required"),
        (
            f"/task/{task_id}",
            {"siteId": str(rack.site_id), "includeReport": "true"},
            400,
            "Unknown query parameter specified in request: includeReport",
        ),
    ]
    for path, params, status, message in cases:
        response = await client.get(BASE + path, params=params, headers=auth)
        assert (response.status_code, response.json()["message"]) == (status, message), path


async def test_tray_and_rack_lists(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    tray = rack.trays["Compute"][0]
    neighbour = rack.trays["Compute"][1]
    done = await tray_power(client, auth, rack, tray)
    await finish(services, done)
    running = await tray_power(client, auth, rack, tray, "off")
    await start_running(services, running, REPORT)
    queued = await tray_power(client, auth, rack, tray, "cycle", conflictStrategy="queue")
    elsewhere = await tray_power(client, auth, rack, neighbour)

    site = {"siteId": str(rack.site_id)}

    async def ids(path: str, **params: Any) -> tuple[list[str], dict[str, Any], Any]:
        response = await client.get(BASE + path, params=site | params, headers=auth)
        assert response.status_code == 200, response.text
        assert_valid_tasks(response.json())
        return (
            [t["id"] for t in response.json()],
            json.loads(response.headers["X-Pagination"]),
            response.json(),
        )

    tray_path = f"/tray/{tray}/task"
    got, paging, body = await ids(tray_path)
    assert got == [queued, running, done]  # newest first
    assert paging == {"pageNumber": 1, "pageSize": 20, "total": 3, "orderBy": None}
    assert all("report" not in t for t in body)

    got, paging, body = await ids(tray_path, activeOnly="true")
    assert got == [queued, running] and paging["total"] == 2

    got, _, body = await ids(tray_path, includeReport="true")
    reports = {t["id"]: t.get("report") for t in body}
    assert reports == {queued: None, running: REPORT, done: None}

    got, paging, _ = await ids(tray_path, pageSize=2, pageNumber=2)
    assert got == [done] and paging == {"pageNumber": 2, "pageSize": 2, "total": 3, "orderBy": None}

    got, paging, _ = await ids(tray_path, activeOnly="true", pageSize=1, includeReport="true")
    assert got == [queued] and paging["total"] == 2

    got, paging, _ = await ids(f"/rack/{rack.rack_id}/task")
    assert got == [elsewhere, queued, running, done] and paging["total"] == 4

    got, _, _ = await ids(
        f"/rack/{rack.rack_id}/task", activeOnly="false", pageNumber=3, pageSize=2
    )
    assert got == []

    got, _, _ = await ids(f"/tray/{rack.trays['NVLSwitch'][0]}/task")
    assert got == []


async def test_site_task_list_filters(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    second = await add_rack(services, rack.site_id, "rack-02")
    a = await tray_power(client, auth, rack, rack.trays["Compute"][0])
    await finish(services, a, TaskStatus.FAILED)
    b = await submit(
        client,
        auth,
        f"/rack/{second.rack_id}/firmware",
        {"siteId": str(rack.site_id), "version": "2.0.0"},
    )
    site = {"siteId": str(rack.site_id)}

    async def ids(**params: Any) -> list[str]:
        response = await client.get(f"{BASE}/task", params=site | params, headers=auth)
        assert response.status_code == 200, response.text
        assert_valid_tasks(response.json())
        return [t["id"] for t in response.json()]

    assert await ids() == [b, a]
    assert await ids(status="failed") == [a]
    assert await ids(status=["Pending", "Failed"]) == [b, a]
    assert await ids(status="Failed", activeOnly="true") == []
    assert await ids(rackId=str(second.rack_id)) == [b]
    assert await ids(trayId=str(rack.trays["Compute"][0])) == [a]
    assert await ids(operationType="firmware_control") == [b]
    assert await ids(operationType="BringUp") == []

    bad = [
        ({"status": "Done"}, "status"),
        ({"rackId": "r"}, "rackId"),
        ({"trayId": "t"}, "trayId"),
        ({"operationType": "Reboot"}, "operationType"),
        ({"orderBy": "CREATED_DESC"}, None),
        ({"pageSize": "101"}, "pageSize"),
        ({"activeOnly": "maybe"}, "activeOnly"),
    ]
    for params, field in bad:
        response = await client.get(f"{BASE}/task", params=site | params, headers=auth)
        assert response.status_code == 400, params
        if field is not None:
            assert field in response.json()["data"], response.json()


async def test_list_path_and_site_errors(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    site = {"siteId": str(rack.site_id)}
    cases = [
        ("/rack/nope/task", site, 400, "Invalid Rack ID specified in URL"),
        ("/tray/nope/task", site, 400, "Invalid Tray ID specified in URL"),
        (f"/tray/{rack.trays['Compute'][0]}/task", {}, 400, "siteId query parameter is required"),
        (
            f"/rack/{rack.rack_id}/task",
            site | {"orderBy": "CREATED_ASC"},
            400,
            "Unknown query parameter specified in request: orderBy",
        ),
    ]
    for path, params, status, message in cases:
        response = await client.get(BASE + path, params=params, headers=auth)
        assert (response.status_code, response.json()["message"]) == (status, message), path
    dark = await make_site_with_rack(services, flow=False)
    response = await client.get(
        f"{BASE}/rack/{dark.rack_id}/task", params={"siteId": str(dark.site_id)}, headers=auth
    )
    assert response.status_code == 412


async def cancel(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    rack: MadeRack,
    task_id: str,
    path: str = "/task",
) -> httpx.Response:
    return await client.post(
        f"{BASE}{path}/{task_id}/cancel", json={"siteId": str(rack.site_id)}, headers=auth
    )


async def test_cancel_waiting_and_undispatched_tasks(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    tray = rack.trays["Compute"][0]
    first = await tray_power(client, auth, rack, tray)
    queued = await tray_power(client, auth, rack, tray, "off", conflictStrategy="queue")
    assert (await load_task(services, queued)).status == "Waiting"

    response = await cancel(client, auth, rack, queued, "/rack/task")
    assert response.status_code == 202
    body = response.json()
    assert_valid_task(body)
    assert (body["status"], body["message"]) == ("Terminated", "Cancelled by user")
    assert body["finished"] is not None and "report" not in body

    # Pending, no workflow yet (no Temporal in this process): terminated directly.
    response = await cancel(client, auth, rack, first)
    assert response.status_code == 202 and response.json()["status"] == "Terminated"

    # Idempotent: a second cancel answers the same task unchanged.
    again = await cancel(client, auth, rack, first)
    assert again.status_code == 202 and again.json() == response.json()


async def test_cancel_promotes_the_next_queued_task(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    tray = rack.trays["Compute"][0]
    first = await tray_power(client, auth, rack, tray)
    queued = await tray_power(client, auth, rack, tray, "off", conflictStrategy="queue")
    assert (await cancel(client, auth, rack, first)).status_code == 202
    promoted = await load_task(services, queued)
    assert (promoted.status, promoted.message) == (
        "Pending",
        "Promoted: no conflicting active tasks",
    )
    assert promoted.rule_id is not None and promoted.rule_definition


@pytest.mark.parametrize("final", [TaskStatus.SUCCEEDED, TaskStatus.FAILED])
async def test_cancel_of_a_finished_task_is_409(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    final: TaskStatus,
) -> None:
    task_id = await tray_power(client, auth, rack, rack.trays["Compute"][0])
    await finish(services, task_id, final)
    response = await cancel(client, auth, rack, task_id)
    assert response.status_code == 409
    assert response.json()["message"] == (
        f"task {task_id} cannot be cancelled (status: {final.value})"
    )
    assert (await load_task(services, task_id)).status == final.value


async def test_cancel_errors(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    task_id = await tray_power(client, auth, rack, rack.trays["Compute"][0])
    response = await client.post(f"{BASE}/task/{task_id}/cancel", json={}, headers=auth)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Failed to validate cancel task request data: siteId: is required"
    )
    other = await make_site_with_rack(services)
    response = await client.post(
        f"{BASE}/task/{task_id}/cancel", json={"siteId": str(other.site_id)}, headers=auth
    )
    assert (response.status_code, response.json()["message"]) == (404, "Task not found")
    response = await cancel(client, auth, rack, "nope")
    assert (response.status_code, response.json()["message"]) == (
        400,
        "Invalid Task ID specified in URL",
    )
    assert (await load_task(services, task_id)).status == "Pending"


async def test_openapi_declares_nullable_timestamps_and_optional_report(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    task = spec["components"]["schemas"]["Task"]
    for name in ("started", "finished", "ruleId"):
        assert {"type": "null"} in task["properties"][name]["anyOf"], name
    assert "report" not in task.get("required", [])
    version = spec["components"]["schemas"]["TaskReportV1"]["properties"]["version"]
    assert version["$ref"] == "#/components/schemas/TaskReportV1Version"
    assert spec["components"]["schemas"]["TaskReportV1Version"]["enum"] == [1]
