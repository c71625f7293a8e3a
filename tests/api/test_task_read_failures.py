"""A power read a task could not make shows at once in `GET /tray/{id}/power` and
`GET /tray/{id}`, as a failed state sync read does, without waiting for the next sync
pass; a read that only met an outage of nico's own database marks nothing.

The task's step runs in the real `run_step` activity (Temporal's activity test
environment) against the simulator, with its faults stored as `POST /simulator/fault`
stores them."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from nico.engine import payloads as p
from nico.engine import step_runner
from nico.engine.activities import EngineActivities
from nico.engine.contracts import TrayTarget
from nico.engine.infra import retrying
from nico.engine.state_sync import StateSync
from nico.hardware.simulator import SimulatorBackend
from nico.services import Services
from nico.store import simulator as sim_store
from nico.store.models import SimFault
from tests.api.test_power_reads import get
from tests.engine.support import act, retry, step
from tests.engine.test_infra_outage import _refused
from tests.engine.test_state_sync import set_power
from tests.support.inventory import MadeRack, make_site_with_rack


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    """A Flow site's NVL72 rack, powered on, read once by the state sync."""
    made = await make_site_with_rack(services)
    await set_power(services, made.tray_ids, on=True)
    await StateSync(services, interval=60).run_pass(spread=0)
    return made


async def inject(
    services: Services, rack: MadeRack, tray: uuid.UUID, kind: str, **extra: Any
) -> None:
    async with services.db.session() as session:
        fault = SimFault(
            site_id=rack.site_id, rack_id=rack.rack_id, tray_id=tray, kind=kind, **extra
        )
        await sim_store.add_faults(session, [fault])


async def run_step(
    services: Services,
    rack: MadeRack,
    tray: uuid.UUID,
    main: dict[str, Any],
    *,
    limit: float = 600.0,
) -> p.StepResult:
    """One step of a task on one Compute tray, in the `run_step` activity."""
    target = TrayTarget(str(tray), rack.tray_names[tray], "Compute")
    definition = step("Compute", 1, main, retry=retry(1))
    data = p.StepRunInput(
        step=p.StepInput(
            task_id=str(uuid.uuid4()),
            stage=1,
            position=0,
            step=definition,
            trays=[target],
            task_trays=[target],
            operation_type="PowerControl",
            operation_code="power_on",
            info={},
        ),
        limit=limit,
        budget=limit,
    )
    return await asyncio.wait_for(
        ActivityEnvironment().run(EngineActivities(services, None).run_step, data), 60
    )


async def shown(
    client: httpx.AsyncClient, auth: dict[str, str], rack: MadeRack, tray: uuid.UUID
) -> tuple[dict[str, Any], str]:
    """The tray's `GET /tray/{id}/power` `actual` and its `GET /tray/{id}` powerState."""
    power = await get(client, auth, f"/tray/{tray}/power", rack.site_id)
    plain = await get(client, auth, f"/tray/{tray}", rack.site_id)
    return power["actual"], plain["powerState"]


async def test_a_verify_whose_bmc_answers_with_an_error_shows_the_tray_unknown_at_once(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    """The tray read On by the sync; then its BMC fails every call and a task's
    VerifyPowerStatus cannot read it. Before, `/power` and `GET /tray` still said On
    (the last sync read) until the next pass, 5 minutes later by default."""
    compute = rack.trays["Compute"][0]
    good, _ = await shown(client, auth, rack, compute)
    await inject(services, rack, compute, "unreachable")
    result = await run_step(
        services, rack, compute, act("VerifyPowerStatus", "1s", expected_status="on")
    )
    assert result.failed == 1 and result.error is not None, result
    assert "BMC unreachable (injected fault)" in result.error
    actual, state = await shown(client, auth, rack, compute)
    assert (actual["state"], state) == ("Unknown", "Unknown")
    assert actual["error"] == "BMC unreachable (injected fault)"
    assert actual["observedAt"] >= good["observedAt"]  # RFC 3339 UTC, second precision
    assert actual["lastGood"] == {"state": "On", "observedAt": good["observedAt"]}


async def test_a_verify_whose_bmc_does_not_answer_shows_the_tray_unknown_at_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The BMC takes 30 s to answer (slow fault), each read of the task's poll has 0.5 s:
    the tray shows Unknown, "BMC did not answer within 500ms", as after a sync read the
    BMC did not answer."""
    monkeypatch.setattr(step_runner, "POLL_ATTEMPT_TIMEOUT", 0.5)
    compute = rack.trays["Compute"][1]
    await inject(services, rack, compute, "slow", slow_seconds=30)
    result = await run_step(
        services, rack, compute, act("VerifyPowerStatus", "1s", expected_status="on")
    )
    assert result.failed == 1 and result.error is not None, result
    assert "no answer within 500ms" in result.error
    actual, state = await shown(client, auth, rack, compute)
    assert (actual["state"], state) == ("Unknown", "Unknown")
    assert actual["error"] == "BMC did not answer within 500ms"
    assert actual["lastGood"]["state"] == "On"


async def test_a_get_power_status_the_bmc_does_not_answer_shows_the_tray_unknown(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    """GetPowerStatus (one 1 s attempt) on a BMC that takes 30 s: the same."""
    compute = rack.trays["Compute"][2]
    await inject(services, rack, compute, "slow", slow_seconds=30)
    result = await run_step(services, rack, compute, act("GetPowerStatus", "1s"))
    assert result.failed == 1 and result.error is not None, result
    assert "no answer within 1s" in result.error
    actual, state = await shown(client, auth, rack, compute)
    assert (actual["state"], state, actual["error"]) == (
        "Unknown",
        "Unknown",
        "BMC did not answer within 1s",
    )


async def test_a_read_that_only_met_nicos_database_outage_marks_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every power read of the task waits on nico's database, which refuses connections
    for the whole step (each read is cut by its 0.3 s deadline while it waits): the step
    ends at its own 1 s limit, and the tray still shows its last read, On, with no error.
    An outage of nico's own is never the tray's error."""
    monkeypatch.setattr(step_runner, "POLL_ATTEMPT_TIMEOUT", 0.3)
    refused = await _refused()

    async def power_status(self: SimulatorBackend, *args: Any, **kwargs: Any) -> Any:
        async def query() -> None:
            raise refused

        await retrying(query)

    monkeypatch.setattr(SimulatorBackend, "power_status", power_status)
    compute = rack.trays["Compute"][3]
    before = await shown(client, auth, rack, compute)
    began = time.monotonic()
    result = await run_step(
        services,
        rack,
        compute,
        act("VerifyPowerStatus", "30m", expected_status="on"),
        limit=1.0,
    )
    assert result.status == "failed" and result.error is not None, result
    assert result.error.startswith("step timeout 1s exceeded"), result.error
    assert time.monotonic() - began < 10
    actual, state = await shown(client, auth, rack, compute)
    assert (actual["state"], state, actual["error"]) == ("On", "On", None)
    assert (actual, state) == before
