"""Black-box over real HTTP: uvicorn on a free 127.0.0.1 port, a real worker on the
time-skipping Temporal server, the simulated NVL72-shaped rack, real dev tokens.

Power the rack off and on, upgrade firmware, bring it up, cancel mid-run, queue behind a
running task, replay an Idempotency-Key; every task body is checked against seed 000.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nico.services import Services
from nico.store.history import HistoryQuery, list_history
from tests.support.live import BASE, Live
from tests.support.seed000 import assert_valid_task, assert_valid_tasks

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


def all_completed(report: dict[str, Any]) -> bool:
    return all(
        stage["status"] == "completed"
        and all(step["status"] in ("completed", "skipped") for step in stage["steps"])
        for stage in report["stages"]
    )


async def test_power_on_off_on(live: Live) -> None:
    rack = live.rack
    path = f"/rack/{rack.rack_id}/power"
    # The simulated rack starts unpowered: on first, then off, then on again.
    [first] = await live.operate("PATCH", path, {"state": "on"})
    assert (await live.finished(first))["status"] == "Succeeded"
    [off] = await live.operate("PATCH", path, {"state": "off"})
    done = await live.finished(off)
    assert done["status"] == "Succeeded", done
    assert done["started"] and done["finished"] and all_completed(done["report"])

    [on] = await live.operate("PATCH", f"/rack/{rack.rack_id}/power", {"state": "on"})
    done = await live.finished(on)
    assert done["status"] == "Succeeded", done
    assert done["ruleId"] is not None and all_completed(done["report"])
    steps = {s["componentType"]: s for st in done["report"]["stages"] for s in st["steps"]}
    assert steps["Compute"]["totalComponents"] == 18
    assert steps["PowerShelf"]["totalComponents"] == 8

    compute = rack.trays["Compute"][0]
    tray = await live.http.get(f"{BASE}/tray/{compute}", params=live.site)
    assert tray.status_code == 200 and tray.json()["powerState"] == "On"

    listed = await live.http.get(
        f"{BASE}/tray/{compute}/task", params=live.site | {"includeReport": "true"}
    )
    assert listed.status_code == 200
    assert_valid_tasks(listed.json())
    assert [t["id"] for t in listed.json()] == [on, off, first]
    assert all("report" in t for t in listed.json())
    assert json.loads(listed.headers["X-Pagination"])["total"] == 3


async def test_powering_off_a_rack_that_is_already_off_succeeds(live: Live) -> None:
    # The simulated rack has never been powered: every tray is already off, so graceful
    # and forced power-off verify that and succeed instead of failing on unfed BMCs.
    path = f"/rack/{live.rack.rack_id}/power"
    for state in ("off", "forceoff"):
        [task_id] = await live.operate("PATCH", path, {"state": state})
        done = await live.finished(task_id)
        assert done["status"] == "Succeeded", done
        assert all_completed(done["report"])


async def test_firmware_upgrade(live: Live) -> None:
    rack = live.rack
    await live.power_on()
    [task_id] = await live.operate("PATCH", f"/rack/{rack.rack_id}/firmware", {"version": "2.0.0"})
    done = await live.finished(task_id)
    assert done["status"] == "Succeeded", done
    switch = rack.trays["NVLSwitch"][0]
    tray = await live.http.get(f"{BASE}/tray/{switch}", params=live.site)
    assert tray.json()["firmwareVersion"] == "2.0.0"


async def test_bring_up(live: Live) -> None:
    [task_id] = await live.operate("POST", f"/rack/{live.rack.rack_id}/bringup", {})
    done = await live.finished(task_id)
    assert done["status"] == "Succeeded", done
    assert done["description"] == f"API bring up Rack {live.rack.rack_id}"


async def sleepy_rule(live: Live) -> str:
    """A power_on rule whose first stage sleeps an hour: a task that runs until cancelled."""
    body = {
        "siteId": str(live.rack.site_id),
        "name": "hold-the-rack",
        "operationType": "PowerControl",
        "operationCode": "power_on",
        "ruleDefinition": {
            "version": "v1",
            "steps": [
                {
                    "componentType": "PowerShelf",
                    "stage": 1,
                    "mainOperation": {"name": "Sleep", "parameters": {"duration": "1h"}},
                },
                {
                    "componentType": "Compute",
                    "stage": 2,
                    "mainOperation": {"name": "Sleep", "parameters": {"duration": "1s"}},
                },
            ],
        },
    }
    response = await live.http.post(f"{BASE}/task/rule", json=body)
    assert response.status_code == 201, response.text
    rule_id: str = response.json()["id"]
    return rule_id


async def test_cancel_mid_run_and_queue_behind(live: Live) -> None:
    rack = live.rack
    await live.power_on()
    rule_id = await sleepy_rule(live)
    path = f"/rack/{rack.rack_id}/power"
    [held] = await live.operate("PATCH", path, {"state": "on", "ruleId": rule_id})
    await live.until(held, "Running", "running")

    refused = await live.http.patch(BASE + path, json=live.site | {"state": "off"})
    assert refused.status_code == 409 and held in refused.json()["message"]
    [queued] = await live.operate(
        "PATCH", path, {"state": "off", "conflictStrategy": "queue", "queueTimeout": "10m"}
    )
    waiting = await live.task(queued)
    assert waiting["status"] == "Waiting" and "report" not in waiting

    response = await live.http.post(f"{BASE}/task/{held}/cancel", json=live.site)
    assert response.status_code == 202
    cancelled = response.json()
    assert_valid_task(cancelled)
    assert (cancelled["status"], cancelled["message"]) == ("Terminated", "Cancelled by user")
    stage = cancelled["report"]["stages"][0]
    assert stage["status"] == "failed" and stage["error"] == "cancelled by user"

    # The rack freed up: the queued power-off runs to the end.
    done = await live.finished(queued)
    assert done["status"] == "Succeeded", done
    active = await live.http.get(
        f"{BASE}/rack/{rack.rack_id}/task", params=live.site | {"activeOnly": "true"}
    )
    assert active.json() == []


async def test_idempotent_retry_over_http(live: Live) -> None:
    await live.power_on()
    path = f"/tray/{live.rack.trays['Compute'][0]}/power"
    key = {"Idempotency-Key": "retry-7"}
    first = await live.operate("PATCH", path, {"state": "cycle"}, **key)
    again = await live.operate("PATCH", path, {"state": "cycle"}, **key)
    assert first == again
    other = await live.http.patch(BASE + path, json=live.site | {"state": "off"}, headers=key)
    assert other.status_code == 409 and other.json()["data"] == {"Idempotency-Key": "retry-7"}
    done = await live.finished(first[0])
    assert done["status"] == "Succeeded", done
    listed = await live.http.get(
        f"{BASE}/tray/{live.rack.trays['Compute'][0]}/task", params=live.site
    )
    ids = [t["id"] for t in listed.json()]
    assert ids[0] == first[0] and len(ids) == 2  # the retried cycle once, after power-on


async def test_a_power_task_writes_history_with_its_id_and_who_asked(
    live: Live, services: Services
) -> None:
    """Trays a task observes change state: each change is a history row naming the
    task and the token subject that asked for it, written before the task finishes."""
    path = f"/rack/{live.rack.rack_id}/power"
    [on] = await live.operate("PATCH", path, {"state": "on"})
    assert (await live.finished(on))["status"] == "Succeeded"
    [off] = await live.operate("PATCH", path, {"state": "off"})
    assert (await live.finished(off))["status"] == "Succeeded"
    compute = live.rack.trays["Compute"][0]
    async with services.db.session() as session:
        rows, _ = await list_history(session, HistoryQuery(tray_id=compute), offset=0, limit=20)
    changes = [(r.from_value, r.to_value, str(r.task_id), r.created_by, r.source) for r in rows]
    assert changes[0] == ("On", "Off", off, "dev", "task"), changes
    assert all(task in (on, off) for _, _, task, _, _ in changes)
