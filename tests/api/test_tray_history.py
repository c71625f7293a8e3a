"""`GET /tray/{id}/history` and `GET /rack/{id}/history`: newest first, paged like the
task lists, filtered by kind and time, one site's rows only, and outliving inventory."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx

from nico.services import Services
from nico.store.history import HistoryEntry, HistoryKind, HistorySource, append_history
from nico.store.models import utcnow
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE


def _entry(
    made: MadeRack, tray: uuid.UUID, minutes_ago: int, kind: HistoryKind, **fields: object
) -> HistoryEntry:
    values: dict[str, object] = {
        "site_id": made.site_id,
        "rack_id": made.rack_id,
        "tray_id": tray,
        "kind": kind,
        "at": utcnow().replace(microsecond=0) - timedelta(minutes=minutes_ago),
        "source": HistorySource.SYNC,
    }
    values.update(fields)
    return HistoryEntry(**values)  # type: ignore[arg-type]


async def _seed(services: Services, made: MadeRack) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Compute tray A: 3 power rows and 1 firmware step; tray B: 1 power row."""
    a, b = made.trays["Compute"][0], made.trays["Compute"][1]
    task = uuid.uuid4()
    entries = [
        _entry(made, a, 50, HistoryKind.POWER, from_value="Off", to_value="On"),
        _entry(made, a, 40, HistoryKind.POWER, from_value="On", to_value="Off"),
        _entry(
            made,
            a,
            30,
            HistoryKind.FIRMWARE,
            source=HistorySource.TASK,
            component=None,
            from_value="1.0.0",
            to_value="1.1.0",
            task_id=task,
            created_by="alice",
            outcome="Succeeded",
            message="upgrade",
        ),
        _entry(made, a, 20, HistoryKind.POWER, from_value="Off", to_value="On"),
        _entry(made, b, 10, HistoryKind.POWER, from_value="On", to_value="Unknown"),
    ]
    async with services.db.session() as session:
        await append_history(session, entries)
    return a, b, task


async def test_tray_history_pages_newest_first_with_the_task_lists_header(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)
    a, _, task = await _seed(services, made)
    site = {"siteId": str(made.site_id)}

    first = await client.get(
        f"{BASE}/tray/{a}/history", params=site | {"pageSize": 3}, headers=auth
    )
    assert first.status_code == 200, first.text
    assert json.loads(first.headers["X-Pagination"]) == {
        "pageNumber": 1,
        "pageSize": 3,
        "total": 4,
        "orderBy": None,
    }
    rows = first.json()
    assert [(r["kind"], r["from"], r["to"]) for r in rows] == [
        ("power", "Off", "On"),
        ("firmware", "1.0.0", "1.1.0"),
        ("power", "On", "Off"),
    ]
    step = rows[1]
    assert step["taskId"] == str(task) and step["createdBy"] == "alice"
    assert (step["outcome"], step["message"], step["source"]) == ("Succeeded", "upgrade", "task")
    assert step["at"].endswith("Z") and step["trayId"] == str(a)
    assert rows[0]["outcome"] is None and rows[0]["source"] == "sync"

    second = await client.get(
        f"{BASE}/tray/{a}/history", params=site | {"pageSize": 3, "pageNumber": 2}, headers=auth
    )
    assert [(r["from"], r["to"]) for r in second.json()] == [("Off", "On")]


async def test_rack_history_lists_every_tray_and_filters_by_kind_and_time(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)
    a, b, _ = await _seed(services, made)
    site = {"siteId": str(made.site_id)}
    url = f"{BASE}/rack/{made.rack_id}/history"

    every = (await client.get(url, params=site, headers=auth)).json()
    assert [r["trayId"] for r in every] == [str(b)] + [str(a)] * 4

    power = await client.get(url, params=site | {"kind": "Power"}, headers=auth)
    assert [r["kind"] for r in power.json()] == ["power"] * 4
    assert json.loads(power.headers["X-Pagination"])["total"] == 4

    since = (utcnow() - timedelta(minutes=35)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = await client.get(url, params=site | {"since": since}, headers=auth)
    assert [r["trayId"] for r in recent.json()] == [str(b), str(a), str(a)]


async def test_bad_filters_and_ids_are_400s_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)
    site = {"siteId": str(made.site_id)}
    tray = made.trays["Compute"][0]
    cases = [
        (f"/tray/{tray}/history", {"kind": "voltage"}, {"kind": "must be one of [power firmware]"}),
        (
            f"/rack/{made.rack_id}/history",
            {"since": "yesterday", "kind": "power"},
            {"since": "must be an RFC 3339 time with a time zone, e.g. 2026-12-03T08:00:00Z"},
        ),
        (
            f"/tray/{tray}/history",
            {"since": "2026-12-03T08:00:00"},
            {"since": "must be an RFC 3339 time with a time zone, e.g. 2026-12-03T08:00:00Z"},
        ),
        # In range as written, out of range once in UTC: a 400, never a 500.
        (
            f"/tray/{tray}/history",
            {"since": "0001-01-01T00:00:00+05:00"},
            {"since": "must be an RFC 3339 time with a time zone, e.g. 2026-12-03T08:00:00Z"},
        ),
        (
            f"/rack/{made.rack_id}/history",
            {"since": "9999-12-31T23:59:59-05:00"},
            {"since": "must be an RFC 3339 time with a time zone, e.g. 2026-12-03T08:00:00Z"},
        ),
        (
            f"/tray/{tray}/history",
            {"pageSize": 101},
            {"pageSize": "must be less than or equal to 100"},
        ),
        ("/tray/not-a-uuid/history", {}, {"id": "must be a valid UUID"}),
    ]
    for path, params, data in cases:
        response = await client.get(BASE + path, params=site | params, headers=auth)
        assert response.status_code == 400, (path, params, response.text)
        body = response.json()
        for field, message in data.items():
            assert body["data"][field] == message, (path, body)


async def test_history_is_one_sites_and_outlives_the_tray(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)
    a, _, _ = await _seed(services, made)
    other = await make_site_with_rack(services, rack_name="rack-09")
    # The other site's id with this tray's id lists nothing of this site.
    foreign = await client.get(
        f"{BASE}/tray/{a}/history", params={"siteId": str(other.site_id)}, headers=auth
    )
    assert (foreign.status_code, foreign.json()) == (200, [])

    site = {"siteId": str(made.site_id)}
    deleted = await client.delete(f"{BASE}/rack/{made.rack_id}", params=site, headers=auth)
    assert deleted.status_code == 204
    kept = await client.get(f"{BASE}/tray/{a}/history", params=site, headers=auth)
    assert kept.status_code == 200 and len(kept.json()) == 4
    never = await client.get(f"{BASE}/tray/{uuid.uuid4()}/history", params=site, headers=auth)
    assert (never.status_code, never.json()) == (200, [])


async def test_openapi_documents_the_history_lists(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for kind in ("rack", "tray"):
        get = spec["paths"][f"/v2/org/{{org}}/nico/{kind}/{{id}}/history"]["get"]
        params = {p["name"] for p in get["parameters"]}
        assert {"siteId", "kind", "since", "pageNumber", "pageSize"} <= params
        assert "X-Pagination" in get["responses"]["200"]["headers"]
        kinds = next(p for p in get["parameters"] if p["name"] == "kind")["schema"]
        assert {"type": "string", "enum": ["power", "firmware"]} in kinds["anyOf"]
    entry = spec["components"]["schemas"]["TrayHistoryEntry"]["properties"]
    assert {"from", "to", "at", "taskId", "createdBy", "outcome", "kind"} <= set(entry)
    # The outcomes the step history writes (engine/step_history.py), each explained.
    outcome = entry["outcome"]["description"]
    for word in ("Succeeded", "Failed", "Skipped (a firmware tray already at the version)"):
        assert word in outcome
    assert "NotStarted (the step stopped after another tray failed" in outcome
    assert "Terminated" in outcome
