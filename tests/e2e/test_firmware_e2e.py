"""Firmware requests end to end on the simulated NVL72 rack (real HTTP, a real worker):
an unlisted version starts nothing; a tray already at the requested version (read from
its BMC) is skipped, not failed, unless `overrideVersionCheck`; the report says per tray
from -> to (docs/firmware.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from nico.store.models import Tray
from tests.support.inventory import make_site_with_rack
from tests.support.live import BASE, Live, live_api
from tests.support.tasks import count_tasks

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


def steps(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["componentType"]: s for st in task["report"]["stages"] for s in st["steps"]}


def by_name(step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in step["components"]}


async def firmware(live: Live, body: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    [task_id] = await live.operate("PATCH", path or f"/rack/{live.rack.rack_id}/firmware", body)
    return await live.finished(task_id)


@pytest.fixture
async def dev_live(
    temporal_dev_env: WorkflowEnvironment, services: Services, auth: dict[str, str]
) -> AsyncIterator[Live]:
    """`live` on the dev server, whose visibility lists workflows (the time-skipping
    server cannot)."""
    rack = await make_site_with_rack(services)
    async with live_api(services, temporal_dev_env, auth, rack) as served:
        yield served


async def workflows_on_queue(live: Live, services: Services) -> list[str]:
    queue = services.settings.temporal_task_queue
    return [w.id async for w in live.env.client.list_workflows(f'TaskQueue="{queue}"')]


async def test_an_unlisted_version_starts_no_task_and_no_workflow(
    dev_live: Live, services: Services
) -> None:
    live = dev_live
    refused = await live.http.patch(
        f"{BASE}/rack/{live.rack.rack_id}/firmware",
        json=live.site | {"version": "no-such-version"},
    )
    assert refused.status_code == 400, refused.text
    assert (
        "no-such-version is not in the site's firmware catalog for Compute"
        in (refused.json()["data"]["version"])
    )
    assert await count_tasks(services) == 0
    tasks = await live.http.get(f"{BASE}/rack/{live.rack.rack_id}/task", params=live.site)
    assert tasks.json() == []

    # A listed version right after is accepted (nothing was left holding the rack), and
    # its workflow is the only one the worker's queue ever saw.
    [task_id] = await live.operate(
        "PATCH", f"/rack/{live.rack.rack_id}/firmware", {"version": "2.0.0"}
    )
    for _ in range(100):
        seen = await workflows_on_queue(live, services)
        if seen:
            break
        await asyncio.sleep(0.1)
    assert seen == [task_id]


async def test_trays_already_at_the_version_are_skipped_and_reported(
    live: Live, services: Services
) -> None:
    await live.power_on()
    first = live.tray_id("compute-01")
    done = await firmware(live, {"version": "2.0.0"}, f"/tray/{first}/firmware")
    assert done["status"] == "Succeeded", done
    # The inventory row of compute-02 claims 2.0.0, but its BMC still runs 1.0.0: the
    # skip is decided by what the BMC says, so compute-02 is updated.
    async with services.db.session() as session:
        await session.execute(
            update(Tray)
            .where(Tray.id == uuid.UUID(live.tray_id("compute-02")))
            .values(firmware_version="2.0.0")
        )

    done = await firmware(live, {"version": "2.0.0"})
    assert done["status"] == "Succeeded", done
    assert done["message"] == (
        "Succeeded; 1 tray already ran the requested firmware version and was skipped"
    )
    compute = steps(done)["Compute"]
    assert (compute["status"], compute["completedComponents"]) == ("completed", 17)
    assert (compute["failedComponents"], compute["skippedComponents"]) == (0, 1)
    trays = by_name(compute)
    assert trays["compute-01"] == {
        "trayId": first,
        "name": "compute-01",
        "outcome": "skipped",
        "fromVersion": "2.0.0",
        "toVersion": "2.0.0",
    }
    assert {k: trays["compute-02"][k] for k in ("outcome", "fromVersion", "toVersion")} == {
        "outcome": "completed",
        "fromVersion": "1.0.0",
        "toVersion": "2.0.0",
    }
    switches = steps(done)["NVLSwitch"]
    assert switches["skippedComponents"] == 0 and switches["completedComponents"] == 9
    assert {c["outcome"] for c in switches["components"]} == {"completed"}


async def test_override_version_check_reflashes_trays_at_the_version(live: Live) -> None:
    await live.power_on()
    # The rack runs 1.0.0: without the override every tray is skipped, and that is a
    # success, not a failure.
    done = await firmware(live, {"version": "1.0.0"})
    assert done["status"] == "Succeeded", done
    assert done["message"].startswith("Succeeded; 27 trays already ran")
    for kind, total in (("Compute", 18), ("NVLSwitch", 9)):
        step = steps(done)[kind]
        assert (step["completedComponents"], step["skippedComponents"]) == (0, total)
        assert step["failedComponents"] == 0

    done = await firmware(live, {"version": "1.0.0", "overrideVersionCheck": True})
    assert done["status"] == "Succeeded", done
    assert done["message"] == "Succeeded"
    compute = steps(done)["Compute"]
    assert (compute["completedComponents"], compute["skippedComponents"]) == (18, 0)
    assert {(c["outcome"], c["fromVersion"], c["toVersion"]) for c in compute["components"]} == {
        ("completed", "1.0.0", "1.0.0")
    }


async def test_a_finished_upgrade_flips_compliance_and_writes_history(live: Live) -> None:
    await live.power_on()
    rack_path = f"/rack/{live.rack.rack_id}/firmware"

    async def compliance() -> dict[str, Any]:
        response = await live.http.get(BASE + rack_path, params=live.site)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    # Never read: nothing is judged on what the import claimed.
    assert (await compliance())["summary"]["unknown"] == 35
    # Read by a firmware step (the trays already run 1.0.0: skipped) and judged against the
    # catalog's highest version, 2.1: outdated.
    done = await firmware(live, {"version": "1.0.0"})
    assert done["status"] == "Succeeded", done
    before = await compliance()
    assert before["summary"] == {
        "total": 35,
        "current": 0,
        "outdated": 27,
        "unknown": 8,
        "stale": 0,
    }
    compute = next(t for t in before["components"] if t["name"] == "compute-01")
    assert (compute["version"], compute["targetVersion"], compute["compliance"]) == (
        "1.0.0",
        "2.1",
        "outdated",
    )
    assert compute["observedAt"] is not None

    done = await firmware(live, {"version": "2.1"})
    assert done["status"] == "Succeeded", done
    after = await compliance()
    assert after["summary"] == {"total": 35, "current": 27, "outdated": 0, "unknown": 8, "stale": 0}
    read_before = compute["observedAt"]
    compute = next(t for t in after["components"] if t["name"] == "compute-01")
    assert compute["compliance"] == "current"
    assert compute["observedAt"] >= read_before  # RFC 3339 UTC: text order is time order
    assert {(c["name"], c["version"], c["compliance"]) for c in compute["components"]} == {
        ("BMC", "2.1", "current"),
        ("BIOS", "2.1", "current"),
        ("DPU", "2.1", "current"),
    }

    history = await live.http.get(
        f"{BASE}/tray/{live.tray_id('compute-01')}/history",
        params=live.site | {"kind": "firmware"},
    )
    assert history.status_code == 200, history.text
    rows = history.json()
    changed = {(r["component"], r["from"], r["to"]) for r in rows if r["outcome"] is None}
    assert ("BMC", "1.0.0", "2.1") in changed
    assert {r["taskId"] for r in rows if r["to"] == "2.1"} == {done["id"]}
    # The finished steps: the upgrade Succeeded from -> to; the first task Skipped it.
    steps = [(r["outcome"], r["from"], r["to"]) for r in rows if r["outcome"] is not None]
    assert steps == [("Succeeded", "1.0.0", "2.1"), ("Skipped", "1.0.0", "1.0.0")]
