"""`GET /tray/{id}/power`, `GET /rack/{id}/power` and `taskStats`: what the state sync and
tasks observed, what the last power task asked for, what is in flight, and the rack
summaries; same guard and errors as the other rack and tray reads.

These run the real API without Temporal: an accepted task stays Pending."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from nico.engine.state_sync import StateSync
from nico.services import Services
from nico.store import simulator as sim_store
from nico.store.models import SimFault, Tray, utcnow
from nico.store.tasks import insert_tasks
from tests.engine.test_state_sync import set_power
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    """A Flow site's NVL72 rack, powered on, read once by the state sync."""
    made = await make_site_with_rack(services)
    await set_power(services, made.tray_ids, on=True)
    await StateSync(services, interval=60).run_pass(spread=0)
    return made


async def get(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, site: uuid.UUID | str
) -> dict[str, Any]:
    response = await client.get(f"{BASE}{path}", params={"siteId": str(site)}, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_tray_power_shows_the_observed_state_with_its_time(
    client: httpx.AsyncClient, auth: dict[str, str], rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][0]
    body = await get(client, auth, f"/tray/{compute}/power", rack.site_id)
    assert body["id"] == str(compute) and body["type"] == "Compute"
    assert body["actual"]["state"] == "On"
    assert body["actual"]["observedAt"] and body["actual"]["error"] is None
    assert body["actual"]["lastGood"] is None
    assert body["desired"] == {
        "state": None,
        "requested": None,
        "taskId": None,
        "taskStatus": None,
        "requestedAt": None,
    }
    assert body["tasks"] == []


async def test_power_pressed_behind_nicos_back_reads_off_within_one_sync_interval(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][5]
    sync = StateSync(services, interval=1.0)
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(sync.run())
    try:
        pressed = utcnow().replace(microsecond=0)  # the wire has second precision
        await set_power(services, [compute], on=False)
        deadline = loop.time() + sync.interval + 5.0
        while (body := await get(client, auth, f"/tray/{compute}/power", rack.site_id))["actual"][
            "state"
        ] != "Off":
            assert loop.time() < deadline, body
            await asyncio.sleep(0.1)
    finally:
        running.cancel()
    assert at(body["actual"]["observedAt"]) >= pressed  # a fresh read, not the old one
    summary = (await get(client, auth, f"/rack/{rack.rack_id}/power", rack.site_id))["actual"]
    assert summary["state"] == "Mixed" and summary["complete"] is True
    assert summary["coverage"] == {
        "total": 35,
        "on": 34,
        "off": 1,
        "transitioning": 0,
        "unknown": 0,
        "unsupported": 0,
    }


async def test_an_unreadable_tray_is_unknown_with_the_error_and_its_last_good_value(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][0]
    good = await get(client, auth, f"/tray/{compute}/power", rack.site_id)
    async with services.db.session() as session:
        await sim_store.add_faults(
            session,
            [
                SimFault(
                    site_id=rack.site_id, rack_id=rack.rack_id, tray_id=compute, kind="unreachable"
                )
            ],
        )
    await StateSync(services, interval=60).run_pass(spread=0)
    body = await get(client, auth, f"/tray/{compute}/power", rack.site_id)
    actual = body["actual"]
    assert actual["state"] == "Unknown"  # never the stale On
    assert actual["error"] == "BMC unreachable (injected fault)"
    assert at(actual["observedAt"]) >= at(good["actual"]["observedAt"])
    assert actual["lastGood"] == {"state": "On", "observedAt": good["actual"]["observedAt"]}
    listed = await get(client, auth, f"/tray/{compute}", rack.site_id)
    assert listed["powerState"] == "Unknown"

    summary = (await get(client, auth, f"/rack/{rack.rack_id}/power", rack.site_id))["actual"]
    assert (summary["state"], summary["complete"]) == ("Unknown", False)
    assert (summary["coverage"]["on"], summary["coverage"]["unknown"]) == (34, 1)


async def test_a_never_read_tray_is_unknown_undated_and_leaves_the_summary_incomplete(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)  # no state sync pass: never read
    async with services.db.session() as session:  # an old value from before reads were kept
        await session.execute(update(Tray).values(power_state="On"))
    compute = made.trays["Compute"][0]
    actual = (await get(client, auth, f"/tray/{compute}/power", made.site_id))["actual"]
    assert (actual["state"], actual["observedAt"], actual["lastGood"]) == ("Unknown", None, None)

    rack_power = await get(client, auth, f"/rack/{made.rack_id}/power", made.site_id)
    summary = rack_power["actual"]
    assert (summary["state"], summary["complete"]) == ("Unknown", False)
    assert (summary["coverage"]["on"], summary["coverage"]["unknown"]) == (0, 35)
    assert {c["actual"]["observedAt"] for c in rack_power["components"]} == {None}


async def test_a_power_task_sets_the_desired_state_and_shows_in_flight(
    client: httpx.AsyncClient, auth: dict[str, str], rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][2]
    response = await client.patch(
        f"{BASE}/tray/{compute}/power",
        json={"siteId": str(rack.site_id), "state": "ForceOff"},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    [task_id] = response.json()["taskIds"]

    body = await get(client, auth, f"/tray/{compute}/power", rack.site_id)
    assert body["actual"]["state"] == "On"  # nothing ran yet: the hardware says On
    desired = body["desired"]
    assert (desired["state"], desired["requested"]) == ("Off", "ForceOff")
    assert (desired["taskId"], desired["taskStatus"]) == (task_id, "Pending")
    assert [(t["id"], t["status"], t["operationCode"]) for t in body["tasks"]] == [
        (task_id, "Pending", "force_power_off")
    ]

    rack_power = await get(client, auth, f"/rack/{rack.rack_id}/power", rack.site_id)
    assert [t["id"] for t in rack_power["tasks"]] == [task_id]
    assert rack_power["desired"]["state"] == "Off"  # trays without a wish do not vote
    assert rack_power["desired"]["complete"] is False
    assert rack_power["desired"]["coverage"] == {
        "total": 35,
        "on": 0,
        "off": 1,
        "unset": 34,
        "unsupported": 0,
    }
    other = next(c for c in rack_power["components"] if c["id"] != str(compute))
    assert other["tasks"] == [] and other["desired"]["state"] is None
    assert len(rack_power["components"]) == 35

    # taskStats: the rack and the targeted tray have one task waiting to run.
    stats = {"pendingTaskCount": 1, "activeTaskCount": 0}
    idle = {"pendingTaskCount": 0, "activeTaskCount": 0}
    assert (await get(client, auth, f"/rack/{rack.rack_id}", rack.site_id))["taskStats"] == stats
    assert (await get(client, auth, f"/tray/{compute}", rack.site_id))["taskStats"] == stats
    assert (await get(client, auth, f"/tray/{other['id']}", rack.site_id))["taskStats"] == idle
    racks = await client.get(f"{BASE}/rack", params={"siteId": str(rack.site_id)}, headers=auth)
    assert [r["taskStats"] for r in racks.json()] == [stats]
    trays = await client.get(
        f"{BASE}/tray", params={"siteId": str(rack.site_id), "pageSize": 100}, headers=auth
    )
    by_id = {t["id"]: t["taskStats"] for t in trays.json()}
    assert by_id[str(compute)] == stats
    assert sum(s == idle for s in by_id.values()) == 34


async def test_rack_and_tray_reads_agree_on_an_old_desired_state(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    """A tray's last power task stays its desired state in the rack read however many
    power tasks of other trays the rack ran since (and however many other tasks it had)."""
    quiet, busy = rack.trays["Compute"][0], rack.trays["Compute"][1]
    now = utcnow()

    def task(tray: uuid.UUID, minutes_ago: int, kind: str, code: str) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "site_id": rack.site_id,
            "rack_id": rack.rack_id,
            "operation_type": kind,
            "operation_code": code,
            "description": "",
            "status": "Succeeded",
            "information": {"state": "ForceOff"} if code == "force_power_off" else {},
            "targets": {"Compute": [str(tray)]},
            "created": now - timedelta(minutes=minutes_ago),
        }

    old = task(quiet, 10_000, "PowerControl", "force_power_off")
    rows = [old, task(quiet, 9_000, "FirmwareControl", "upgrade")]
    rows += [task(busy, 500 - i, "PowerControl", "power_on") for i in range(250)]
    async with services.db.session() as session:
        await insert_tasks(session, rows)

    tray = (await get(client, auth, f"/tray/{quiet}/power", rack.site_id))["desired"]
    rack_power = await get(client, auth, f"/rack/{rack.rack_id}/power", rack.site_id)
    by_id = {c["id"]: c["desired"] for c in rack_power["components"]}
    assert (tray["state"], tray["taskId"]) == ("Off", str(old["id"]))
    assert by_id[str(quiet)] == tray
    assert (by_id[str(busy)]["state"], by_id[str(busy)]["requested"]) == ("On", None)
    assert by_id[str(busy)]["taskId"] == str(rows[-1]["id"])  # its newest
    assert rack_power["desired"]["coverage"]["off"] == 1


async def test_a_running_task_counts_as_active(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    from nico.domain import TaskStatus
    from nico.store.tasks import transition_task

    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/power",
        json={"siteId": str(rack.site_id), "state": "Cycle"},
        headers=auth,
    )
    [task_id] = response.json()["taskIds"]
    async with services.db.session() as session:
        assert await transition_task(session, uuid.UUID(task_id), TaskStatus.RUNNING)
    body = await get(client, auth, f"/rack/{rack.rack_id}", rack.site_id)
    assert body["taskStats"] == {"pendingTaskCount": 0, "activeTaskCount": 1}
    power = await get(client, auth, f"/rack/{rack.rack_id}/power", rack.site_id)
    assert power["desired"]["state"] == "On"  # a cycle ends On
    assert [t["status"] for t in power["tasks"]] == ["Running"]


@pytest.mark.parametrize("kind", ["rack", "tray"])
async def test_power_reads_answer_like_the_other_reads_to_bad_ids(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, kind: str
) -> None:
    made = await make_site_with_rack(services)
    other = await make_site_with_rack(services, rack_name="rack-other")
    own = made.rack_id if kind == "rack" else made.trays["Compute"][0]
    foreign = other.rack_id if kind == "rack" else other.trays["Compute"][0]
    site = {"siteId": str(made.site_id)}

    async def status(path: str, params: dict[str, str]) -> tuple[int, str]:
        response = await client.get(f"{BASE}{path}", params=params, headers=auth)
        return response.status_code, response.json().get("message", "")

    assert (await status(f"/{kind}/{own}/power", site))[0] == 200
    # Every read under a rack or tray says a malformed id the same way.
    expected = f"Invalid {kind.title()} ID specified in URL"
    for sub in ("power", "firmware", "history", "task"):
        assert await status(f"/{kind}/not-a-uuid/{sub}", site) == (400, expected), sub
    assert (await status(f"/{kind}/{uuid.uuid4()}/power", site))[0] == 404
    assert (await status(f"/{kind}/{foreign}/power", site))[0] == 404  # another site's
    assert (await status(f"/{kind}/{own}/power", {}))[0] == 400  # siteId required
    code, message = await status(f"/{kind}/{own}/power", site | {"verbose": "1"})
    assert code == 400 and "verbose" in message
    unauthorized = await client.get(f"{BASE}/{kind}/{own}/power", params=site)
    assert unauthorized.status_code == 401


async def test_power_reads_need_flow(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services, flow=False)
    response = await client.get(
        f"{BASE}/rack/{made.rack_id}/power", params={"siteId": str(made.site_id)}, headers=auth
    )
    assert response.status_code == 412


async def plain_power_states(
    client: httpx.AsyncClient, auth: dict[str, str], made: MadeRack
) -> dict[str, dict[str, str]]:
    """Each tray's `powerState` as every plain read shows it (`GET /tray`, `GET /tray/{id}`,
    a rack's components in `GET /rack/{id}` and `GET /rack`), keyed by tray id."""
    site = {"siteId": str(made.site_id)}
    with_trays = site | {"includeComponents": "true"}
    listed = await client.get(f"{BASE}/tray", params=site | {"pageSize": 100}, headers=auth)
    rack = await client.get(f"{BASE}/rack/{made.rack_id}", params=with_trays, headers=auth)
    racks = await client.get(f"{BASE}/rack", params=with_trays, headers=auth)
    assert (listed.status_code, rack.status_code, racks.status_code) == (200, 200, 200)
    [in_racks] = racks.json()
    shown = {
        "GET /tray": {t["id"]: t["powerState"] for t in listed.json()},
        "GET /rack/{id}": {c["id"]: c["powerState"] for c in rack.json()["components"]},
        "GET /rack": {c["id"]: c["powerState"] for c in in_racks["components"]},
    }
    shown["GET /tray/{id}"] = {
        str(t): (await get(client, auth, f"/tray/{t}", made.site_id))["powerState"]
        for t in (made.trays["Compute"][0], made.trays["Compute"][5], made.trays["PowerShelf"][0])
    }
    return shown


async def assert_plain_reads_agree_with_power(
    client: httpx.AsyncClient, auth: dict[str, str], made: MadeRack
) -> dict[str, str]:
    """Every plain read shows each tray's `GET /rack/{id}/power` actual state; returns it."""
    power = await get(client, auth, f"/rack/{made.rack_id}/power", made.site_id)
    actual = {c["id"]: c["actual"]["state"] for c in power["components"]}
    assert len(actual) == 35
    for read, states in (await plain_power_states(client, auth, made)).items():
        assert states == {t: actual[t] for t in states}, read
    return actual


async def test_plain_reads_show_power_pressed_behind_nicos_back_after_one_sync_pass(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][5]
    await set_power(services, [compute], on=False)
    await StateSync(services, interval=60).run_pass(spread=0)
    assert (await get(client, auth, f"/tray/{compute}", rack.site_id))["powerState"] == "Off"
    actual = await assert_plain_reads_agree_with_power(client, auth, rack)
    assert actual[str(compute)] == "Off" and list(actual.values()).count("On") == 34


async def test_plain_reads_show_an_unreachable_tray_unknown_not_its_last_value(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][0]
    async with services.db.session() as session:
        fault = SimFault(
            site_id=rack.site_id, rack_id=rack.rack_id, tray_id=compute, kind="unreachable"
        )
        await sim_store.add_faults(session, [fault])
    await StateSync(services, interval=60).run_pass(spread=0)
    assert (await get(client, auth, f"/tray/{compute}", rack.site_id))["powerState"] == "Unknown"
    actual = await assert_plain_reads_agree_with_power(client, auth, rack)
    assert actual[str(compute)] == "Unknown" and list(actual.values()).count("On") == 34


async def test_plain_reads_show_a_never_read_tray_unknown(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services)  # no state sync pass: never read
    actual = await assert_plain_reads_agree_with_power(client, auth, made)
    assert set(actual.values()) == {"Unknown"}
