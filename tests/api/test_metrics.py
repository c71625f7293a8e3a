"""/metrics as Prometheus scrapes it: counters move after a real task (HTTP requests by
route, BMC calls by backend and action, finished tasks and step durations, tasks by
status), and several processes add up through NICO_METRICS_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from nico.metrics import exposition
from nico.services import Services
from tests.support.inventory import make_site_with_rack
from tests.support.live import Live, live_api

pytestmark = pytest.mark.temporal

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def live(
    temporal_env: WorkflowEnvironment, services: Services, auth: dict[str, str]
) -> AsyncIterator[Live]:
    rack = await make_site_with_rack(services)
    async with live_api(services, temporal_env, auth, rack) as served:
        yield served


async def scrape(live: Live) -> Samples:
    response = await live.http.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_counters_move_after_a_task(live: Live) -> None:
    before = await scrape(live)
    await live.power_on()
    after = await scrape(live)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v2/org/{org}/nico/rack/{id}/power"
    assert moved("nico_http_requests_total", method="PATCH", route=route, status="200") == 1
    assert moved("nico_tasks_finished_total", operation="PowerControl", status="Succeeded") == 1
    assert (
        moved("nico_task_duration_seconds_count", operation="PowerControl", status="Succeeded") == 1
    )
    for kind in ("PowerShelf", "NVLSwitch", "Compute"):
        step = moved("nico_step_duration_seconds_count", component_type=kind, status="completed")
        assert step == 1, kind
    # One power command per tray: 8 + 9 + 18.
    assert (
        moved("nico_bmc_call_duration_seconds_count", backend="simulator", action="power_control")
        == 35
    )
    assert moved("nico_bmc_call_errors_total", backend="simulator", action="power_control") == 0
    # Read from the database: the one task of this site's org, by status.
    assert value(after, "nico_tasks", status="Succeeded", operation="PowerControl") == 1


async def test_fault_counts_bmc_errors(live: Live) -> None:
    fault = await live.http.post(
        "/v2/org/demo/nico/simulator/fault",
        json=live.site
        | {"trayIds": [live.tray_id("powershelf-01")], "fault": "power-fails", "count": 1},
    )
    assert fault.status_code == 201, fault.text
    before = await scrape(live)
    await live.power_on()  # the retry absorbs the one failure
    after = await scrape(live)
    errors = "nico_bmc_call_errors_total"
    labels = {"backend": "simulator", "action": "power_control"}
    assert value(after, errors, **labels) - value(before, errors, **labels) == 1


def test_processes_add_up_through_the_metrics_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_dir = tmp_path / "metrics"
    code = (
        "from nico.metrics import BMC_ERRORS, RECONCILER_ACTIONS\n"
        "BMC_ERRORS.labels('redfish', 'power_status').inc(2)\n"
        "RECONCILER_ACTIONS.labels('failed').inc()\n"
    )
    env = os.environ | {"NICO_METRICS_DIR": str(metrics_dir)}
    for _ in range(2):  # two worker processes
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    body, _ = exposition()
    samples = parse(body.decode())
    errors = "nico_bmc_call_errors_total"
    assert value(samples, errors, backend="redfish", action="power_status") == 4
    assert value(samples, "nico_reconciler_actions_total", action="failed") == 2
