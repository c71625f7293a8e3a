"""The fault-drill API: inject, list, clear; strict validation with nothing stored; only
where the simulator drives the trays; the simulator obeys what the API stored."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from nico.api.routers.simulator import NOT_SIMULATED_SITE
from nico.domain import PowerState
from nico.hardware.interface import HardwareError
from nico.schemas.common import rfc3339
from nico.services import Services
from nico.store.models import SimFault, utcnow
from tests.support.inventory import create_nvl72_rack, create_site

BASE = "/v2/org/demo/nico"
FAULTS = f"{BASE}/simulator/fault"
PASSWORD = "Sim-9d2c-drill-secret!"


@dataclass
class Drill:
    """A Flow site with one simulated NVL72 rack (BMC credentials set), over the API."""

    http: httpx.AsyncClient
    services: Services
    site_id: str
    rack: dict[str, Any]

    def tray(self, name: str) -> dict[str, Any]:
        return next(c for c in self.rack["components"] if c["name"] == name)

    def tray_id(self, name: str) -> str:
        return str(self.tray(name)["id"])

    async def add(self, **body: Any) -> httpx.Response:
        return await self.http.post(FAULTS, json={"siteId": self.site_id} | body)

    async def added(self, **body: Any) -> list[dict[str, Any]]:
        response = await self.add(**body)
        assert response.status_code == 201, response.text
        faults: list[dict[str, Any]] = response.json()
        return faults

    async def listed(self, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get(FAULTS, params={"siteId": self.site_id} | params)
        assert response.status_code == 200, response.text
        faults: list[dict[str, Any]] = response.json()
        return faults

    async def simulator_power_status(self, name: str) -> PowerState:
        """What the simulated BMC answers now (the engine makes the same call)."""
        ref = await self.services.backends.tray_ref(self.tray_id(name))
        return await self.services.backends.backend_for(ref).power_status(ref)

    async def simulator_power_on(self, name: str, key: str) -> None:
        ref = await self.services.backends.tray_ref(self.tray_id(name))
        await self.services.backends.backend_for(ref).power_control(
            ref, "power_on", operation_key=key
        )


@pytest.fixture
async def drill(client: httpx.AsyncClient, auth: dict[str, str], services: Services) -> Drill:
    client.headers.update(auth)
    site = await create_site(client, auth)
    rack = await create_nvl72_rack(client, auth, site["id"], password=PASSWORD)
    return Drill(client, services, site["id"], rack)


async def test_a_fault_on_named_trays_is_listed_and_the_simulator_obeys_it(drill: Drill) -> None:
    first, second = drill.tray_id("powershelf-01"), drill.tray_id("powershelf-02")
    faults = await drill.added(trayIds=[first, second], fault="unreachable")
    assert [(f["trayId"], f["trayName"]) for f in faults] == [
        (first, "powershelf-01"),
        (second, "powershelf-02"),
    ]
    assert all(
        f["fault"] == "unreachable"
        and f["rackId"] == drill.rack["id"]
        and f["componentType"] is None
        and f["remaining"] is None
        and f["expires"] is None
        and f["siteId"] == drill.site_id
        for f in faults
    )
    assert await drill.listed() == faults
    with pytest.raises(HardwareError, match=r"BMC unreachable \(injected fault\)"):
        await drill.simulator_power_status("powershelf-01")
    # Another shelf of the same rack is untouched.
    assert await drill.simulator_power_status("powershelf-03") is PowerState.OFF


async def test_type_and_rack_scope_with_count_and_expiry(drill: Drill) -> None:
    before = utcnow()
    [fault] = await drill.added(
        rackId=drill.rack["id"],
        componentType="nvswitch",
        fault="Power-Fails",
        count=2,
        expiry="30m",
    )
    assert (fault["componentType"], fault["trayId"], fault["fault"], fault["remaining"]) == (
        "NVLSwitch",
        None,
        "power-fails",
        2,
    )
    expires = fault["expires"]
    assert (before + timedelta(minutes=29)).isoformat() < expires.replace("Z", "+00:00")
    in_a_month = rfc3339(before + timedelta(days=30))
    [slow] = await drill.added(componentType="Compute", fault="slow:1m30s", expiry=in_a_month)
    assert (slow["fault"], slow["rackId"], slow["expires"]) == ("slow:1m30s", None, in_a_month)
    assert [f["id"] for f in await drill.listed()] == [fault["id"], slow["id"]]


async def test_count_limits_the_firings_and_a_spent_fault_is_no_longer_listed(
    drill: Drill,
) -> None:
    await drill.added(trayIds=[drill.tray_id("powershelf-01")], fault="unreachable", count=2)
    for _ in range(2):
        with pytest.raises(HardwareError, match="injected fault"):
            await drill.simulator_power_status("powershelf-01")
    assert await drill.simulator_power_status("powershelf-01") is PowerState.OFF
    assert await drill.listed() == []

    await drill.added(trayIds=[drill.tray_id("powershelf-02")], fault="power-fails", count=1)
    with pytest.raises(HardwareError, match=r"BMC rejected power_on \(injected fault\)"):
        await drill.simulator_power_on("powershelf-02", "k1")
    await drill.simulator_power_on("powershelf-02", "k1")  # the retry goes through
    assert await drill.simulator_power_status("powershelf-02") is PowerState.ON
    assert await drill.listed() == []


async def test_expired_faults_are_not_listed(drill: Drill) -> None:
    async with drill.services.db.session() as session:
        session.add(
            SimFault(
                site_id=uuid.UUID(drill.site_id),
                kind="unreachable",
                expires_at=utcnow() - timedelta(seconds=1),
            )
        )
    assert await drill.listed() == []
    assert await drill.simulator_power_status("powershelf-01") is PowerState.OFF


async def test_list_pages_and_filters_by_tray_and_rack(drill: Drill) -> None:
    names = ["compute-01", "compute-02", "compute-03"]
    made = await drill.added(trayIds=[drill.tray_id(n) for n in names], fault="power-hangs")
    await drill.added(componentType="PowerShelf", fault="firmware-hangs")
    response = await drill.http.get(
        FAULTS, params={"siteId": drill.site_id, "pageSize": "2", "pageNumber": "2"}
    )
    assert response.status_code == 200
    assert json.loads(response.headers["X-Pagination"]) == {
        "pageNumber": 2,
        "pageSize": 2,
        "total": 4,
        "orderBy": None,
    }
    assert [f["fault"] for f in response.json()] == ["power-hangs", "firmware-hangs"]
    only = await drill.listed(trayId=drill.tray_id("compute-02"))
    assert [f["id"] for f in only] == [made[1]["id"]]
    assert len(await drill.listed(rackId=drill.rack["id"])) == 3


async def test_clear_one_a_trays_or_all(drill: Drill) -> None:
    one, two = drill.tray_id("compute-01"), drill.tray_id("compute-02")
    made = await drill.added(trayIds=[one, two], fault="firmware-fails")
    await drill.added(trayIds=[one], fault="slow:2s")
    await drill.added(fault="unreachable")  # the whole site

    response = await drill.http.delete(
        f"{FAULTS}/{made[1]['id']}", params={"siteId": drill.site_id}
    )
    assert response.status_code == 204
    again = await drill.http.delete(f"{FAULTS}/{made[1]['id']}", params={"siteId": drill.site_id})
    assert (again.status_code, again.json()["message"]) == (404, "Simulator fault not found")
    bad = await drill.http.delete(f"{FAULTS}/nope", params={"siteId": drill.site_id})
    assert bad.status_code == 400 and bad.json()["data"] == {"id": "must be a valid UUID"}

    cleared = await drill.http.delete(FAULTS, params={"siteId": drill.site_id, "trayId": one})
    assert cleared.json() == {"deleted": 2}
    assert [f["fault"] for f in await drill.listed()] == ["unreachable"]
    cleared = await drill.http.delete(FAULTS, params={"siteId": drill.site_id})
    assert cleared.json() == {"deleted": 1}
    assert await drill.listed() == []


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("no fault", {"componentType": "Compute"}, "fault", "is required"),
    ("unknown fault", {"fault": "explode"}, "fault", "must be one of unreachable, power-fails"),
    ("internal spelling", {"fault": "power_fail"}, "fault", "must be one of"),
    ("slow without duration", {"fault": "slow:"}, "fault", "slow needs a duration"),
    ("slow zero", {"fault": "slow:0s"}, "fault", "greater than 0"),
    ("slow without unit", {"fault": "slow:5"}, "fault", "slow needs a duration"),
    ("slow too long", {"fault": "slow:2h"}, "fault", "at most 1h"),
    ("count zero", {"fault": "unreachable", "count": 0}, "count", "greater than or equal to 1"),
    ("count as text", {"fault": "unreachable", "count": "3"}, "count", "must be an integer"),
    ("count as bool", {"fault": "unreachable", "count": True}, "count", "must be an integer"),
    ("expiry words", {"fault": "unreachable", "expiry": "tomorrow"}, "expiry", "RFC 3339"),
    (
        "expiry in the past",
        {"fault": "unreachable", "expiry": "2001-01-01T00:00:00Z"},
        "expiry",
        "must be in the future",
    ),
    (
        "expiry without zone",
        {"fault": "unreachable", "expiry": "2099-01-01T00:00:00"},
        "expiry",
        "time zone",
    ),
    ("expiry zero", {"fault": "unreachable", "expiry": "0s"}, "expiry", "must be in the future"),
    (
        "expiry past any date",
        {"fault": "unreachable", "expiry": "99999999999h"},
        "expiry",
        "must be at most 8760h (one year) from now",
    ),
    (
        "expiry a year and an hour",
        {"fault": "unreachable", "expiry": "8761h"},
        "expiry",
        "must be at most 8760h (one year) from now",
    ),
    (
        "expiry far before any date",
        {"fault": "unreachable", "expiry": "-99999999999h"},
        "expiry",
        "must be in the future",
    ),
    (
        "expiry time years ahead",
        {"fault": "unreachable", "expiry": "2099-01-01T00:00:00Z"},
        "expiry",
        "must be at most 8760h (one year) from now",
    ),
    (
        "expiry time at the end of the calendar",
        {"fault": "unreachable", "expiry": "9999-12-31T23:59:59-14:00"},
        "expiry",
        "must be at most 8760h (one year) from now",
    ),
    ("no trays", {"fault": "unreachable", "trayIds": []}, "trayIds", "must not be empty"),
    ("tray not a uuid", {"fault": "unreachable", "trayIds": ["x"]}, "trayIds[0]", "valid UUID"),
    (
        "tray of no one",
        {"fault": "unreachable", "trayIds": [str(uuid.uuid4())]},
        "trayIds[0]",
        "is not a tray of the site",
    ),
    (
        "trays and type",
        {"fault": "unreachable", "trayIds": ["TRAY"], "componentType": "Compute"},
        "componentType",
        "cannot be combined with trayIds",
    ),
    (
        "inventory-only type",
        {"fault": "unreachable", "componentType": "TorSwitch"},
        "componentType",
        "must be one of Compute, NVLSwitch, PowerShelf",
    ),
    ("unknown type", {"fault": "unreachable", "componentType": "gpu"}, "componentType", "one of"),
    ("rack not a uuid", {"fault": "unreachable", "rackId": "r1"}, "rackId", "valid UUID"),
    (
        "rack of no one",
        {"fault": "unreachable", "rackId": str(uuid.uuid4())},
        "rackId",
        "is not a rack of the site",
    ),
    ("typo", {"fault": "unreachable", "cuont": 2}, "cuont", "is not a known field"),
]


@pytest.mark.parametrize(
    ("body", "field", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
async def test_invalid_requests_name_the_field_and_store_nothing(
    drill: Drill, body: dict[str, Any], field: str, message: str
) -> None:
    if body.get("trayIds") == ["TRAY"]:
        body = body | {"trayIds": [drill.tray_id("compute-01")]}
    response = await drill.add(**body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["source"] == "nico"
    assert message in error["data"][field], error
    assert error["message"].startswith("Failed to validate simulator fault request data: ")
    assert field in error["message"]
    assert await drill.listed() == []


async def test_an_expiry_of_one_year_is_the_longest_accepted(drill: Drill) -> None:
    before = utcnow()
    [fault] = await drill.added(fault="unreachable", expiry="8760h")
    expires = datetime.fromisoformat(fault["expires"])
    # Answers carry whole seconds.
    assert timedelta(days=365, minutes=-1) < expires - before < timedelta(days=365, seconds=1)


async def test_a_listed_twice_tray_and_a_body_that_is_not_an_object(drill: Drill) -> None:
    tray = drill.tray_id("compute-01")
    twice = await drill.add(fault="unreachable", trayIds=[tray, tray])
    assert twice.status_code == 400 and twice.json()["data"] == {"trayIds[1]": "is listed twice"}
    not_object = await drill.http.post(FAULTS, json=["unreachable"])
    assert not_object.status_code == 400
    assert await drill.listed() == []


async def test_site_guard_applies_to_the_body(
    drill: Drill, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    missing = await drill.http.post(FAULTS, json={"fault": "unreachable"})
    assert (missing.status_code, missing.json()["message"]) == (400, "siteId is required")
    disabled = await create_site(client, auth, flow=False)
    gated = await drill.http.post(FAULTS, json={"siteId": disabled["id"], "fault": "unreachable"})
    assert (gated.status_code, gated.json()["message"]) == (
        412,
        "Site does not have NICo Flow enabled",
    )


async def test_redfish_trays_are_refused_with_404_and_nothing_stored(
    drill: Drill, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    real = await create_nvl72_rack(
        client, auth, drill.site_id, name="rack-real", backend="redfish", password=PASSWORD
    )
    shelf = next(c for c in real["components"] if c["name"] == "powershelf-01")
    for body in (
        {"trayIds": [shelf["id"]]},
        {"rackId": real["id"]},
        {"componentType": "PowerShelf"},  # the site's shelves include redfish ones
        {},
    ):
        response = await drill.add(fault="unreachable", **body)
        assert response.status_code == 404, (body, response.text)
        assert "simulator is not the backend" in response.json()["message"]
    refused = await drill.add(fault="unreachable", trayIds=[shelf["id"]])
    assert refused.json()["message"] == (
        "simulator is not the backend of tray rack-real/powershelf-01 (it uses redfish): "
        "fault drills need simulated trays"
    )
    # The simulated rack of the same site still takes drills.
    assert await drill.added(rackId=drill.rack["id"], fault="unreachable")
    assert len(await drill.listed()) == 1


async def test_a_site_of_redfish_racks_has_no_fault_api(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    client.headers.update(auth)
    site = await create_site(client, auth)
    await create_nvl72_rack(client, auth, site["id"], backend="redfish")
    params = {"siteId": site["id"]}
    for method, url in (
        ("GET", FAULTS),
        ("DELETE", FAULTS),
        ("DELETE", f"{FAULTS}/{uuid.uuid4()}"),
    ):
        response = await client.request(method, url, params=params)
        assert (response.status_code, response.json()["message"]) == (404, NOT_SIMULATED_SITE)
    created = await client.post(FAULTS, json={"siteId": site["id"], "fault": "unreachable"})
    assert created.status_code == 404
    assert "simulator is not the backend of tray rack-01/" in created.json()["message"]


async def test_with_nico_backend_redfish_an_empty_site_has_no_fault_api(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    services.settings.backend = "redfish"
    site = await create_site(client, auth)
    response = await client.get(FAULTS, params={"siteId": site["id"]}, headers=auth)
    assert (response.status_code, response.json()["message"]) == (404, NOT_SIMULATED_SITE)
    created = await client.post(
        FAULTS, json={"siteId": site["id"], "fault": "unreachable"}, headers=auth
    )
    assert (created.status_code, created.json()["message"]) == (404, NOT_SIMULATED_SITE)


async def test_no_response_of_a_drill_reveals_a_bmc_password(drill: Drill) -> None:
    texts = [json.dumps(drill.rack)]
    for body in (
        {"trayIds": [drill.tray_id("compute-07")], "fault": "unreachable"},
        {"componentType": "Compute", "fault": "slow:1s", "count": 3},
        {"fault": "nonsense"},
    ):
        texts.append((await drill.add(**body)).text)
    texts.append((await drill.http.get(FAULTS, params={"siteId": drill.site_id})).text)
    assert PASSWORD not in "\n".join(texts)
