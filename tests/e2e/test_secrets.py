"""A BMC password given to `POST /rack` never comes back out: failing Redfish runs through
the API (a BMC that echoes credentials in its errors, a wrong password, a ResetType the
BMC lacks), then every place is searched — each API response of the run, the task
messages and report errors in them, DEBUG logs, everything printed, the exceptions, the
Temporal histories of the task workflows, and the database files on disk."""

from __future__ import annotations

import base64
import json
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from tests.support.inventory import MadeRack
from tests.support.live import BASE, Live, live_api, made_rack
from tests.support.sushy import PASSWORD, USERNAME, FakeSystem, SushyEmulator, start_emulator
from tests.support.temporal import wait_for_task_workflow

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.redfish]

WRONG = "Wr0ng-5e1b77-secret?"


def basic(password: str) -> str:
    return base64.b64encode(f"{USERNAME}:{password}".encode()).decode()


SECRETS = (PASSWORD, WRONG, basic(PASSWORD), basic(WRONG))


@dataclass
class Recorder:
    """Everything the API said during the run."""

    said: list[str] = field(default_factory=list)

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.said.append(f"{response.status_code} {dict(response.headers)} {response.text}")


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[tuple[SushyEmulator, SushyEmulator]]:
    """A BMC with sessions, and one whose systems allow only On and ForceOff."""
    sessions = start_emulator(
        tmp_path / "bmc-sessions",
        systems=(FakeSystem("node-echo", "On"), FakeSystem("node-wrong", "On")),
        sessions=True,
    )
    limited = start_emulator(
        tmp_path / "bmc-limited",
        systems=(FakeSystem("node-limited", "On"),),
        reset_types=["On", "ForceOff"],
    )
    yield sessions, limited
    sessions.stop()
    limited.stop()


def one_tray_rack(site_id: str, name: str, bmc: SushyEmulator, node: str, password: str) -> Any:
    return {
        "siteId": site_id,
        "name": name,
        "backend": "redfish",
        "components": [
            {
                "type": "Compute",
                "name": f"{name}-compute",
                "serialNumber": uuid.uuid4().hex,
                "bmcs": [
                    {
                        "ipAddress": bmc.url,
                        "resourceId": node,
                        "username": USERNAME,
                        "password": password,
                    }
                ],
            }
        ],
    }


@pytest.fixture
async def live(
    temporal_env: WorkflowEnvironment, services: Services, auth: dict[str, str]
) -> AsyncIterator[Live]:
    site = MadeRack(site_id=uuid.uuid4(), rack_id=uuid.uuid4())  # replaced once imported
    async with live_api(services, temporal_env, auth, site) as served:
        yield served


async def history_text(client: Client, workflow_id: str) -> str:
    """The workflow's history as JSON, followed by its children's."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    parts = [history.to_json()]
    for event in history.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            parts.append(await history_text(client, child))
    return "\n".join(parts)


async def test_failing_redfish_runs_never_reveal_a_bmc_password(
    live: Live,
    services: Services,
    emulators: tuple[SushyEmulator, SushyEmulator],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    sessions, limited = emulators
    api = Recorder()
    live.http.event_hooks["response"].append(api)
    created = await live.http.post(
        f"{BASE}/site", json={"name": "secrets", "capabilities": {"flow": True}}
    )
    site = created.json()

    # A BMC that puts what it was sent into its error text.
    sessions.inject_fault(
        status=400,
        method="POST",
        path="/redfish/v1/Systems",
        count=10,
        message=f"bad request from {USERNAME}:{PASSWORD} (Authorization: Basic {basic(PASSWORD)})",
    )
    runs = [
        ("rack-echo", sessions, "node-echo", PASSWORD, "***"),
        ("rack-wrong", sessions, "node-wrong", WRONG, "Invalid username or password"),
        ("rack-limited", limited, "node-limited", PASSWORD, "GracefulShutdown"),
    ]
    errors: list[BaseException] = []
    tasks: list[dict[str, Any]] = []
    for name, bmc, node, password, reason in runs:
        body = one_tray_rack(site["id"], name, bmc, node, password)
        imported = await live.http.post(f"{BASE}/rack", json=body)
        assert imported.status_code == 201, imported.text
        live.rack = made_rack(imported.json())
        [task_id] = await live.operate(
            "PATCH", f"/rack/{live.rack.rack_id}/power", {"state": "off"}
        )
        outcome = await wait_for_task_workflow(live.env, task_id)
        assert isinstance(outcome, WorkflowFailureError), outcome
        errors.append(outcome)
        task = await live.task(task_id)
        assert task["status"] == "Failed" and reason in task["message"], (name, task)
        tasks.append(task)
        shown = await live.http.get(
            f"{BASE}/rack/{live.rack.rack_id}", params=live.site | {"includeComponents": "true"}
        )
        assert shown.json()["components"][0]["bmcs"][0]["credentialsSet"] is True
        tray = await live.http.get(f"{BASE}/tray/{live.rack.tray_ids[0]}", params=live.site)
        assert tray.json()["bmcs"][0]["credentialsSet"] is True
        listed = await live.http.get(
            f"{BASE}/rack/{live.rack.rack_id}/task", params=live.site | {"includeReport": "true"}
        )
        assert listed.json()[0]["report"]["error"]

    histories = [await history_text(live.env.client, t["id"]) for t in tasks]
    printed = capfd.readouterr()
    logs = [caplog.text] + [
        "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
    ]
    exceptions = ["".join(traceback.format_exception(e)) + repr(e.__cause__) for e in errors]
    files = [p for p in services.settings.data_dir.rglob("*") if p.is_file()]
    at_rest = [p.read_bytes().decode("latin-1") for p in files]
    everywhere = {
        "API responses": "\n".join(api.said),
        "task messages and report errors": json.dumps(tasks),
        "logs": "\n".join(logs),
        "stdout/stderr": printed.out + printed.err,
        "exceptions": "\n".join(exceptions),
        "Temporal histories": "\n".join(histories),
        "database files": "\n".join(at_rest),
    }
    assert all(text for where, text in everywhere.items() if where != "stdout/stderr")
    leaks = [
        f"{where}: {secret!r}"
        for where, text in everywhere.items()
        for secret in SECRETS
        if secret in text
    ]
    assert leaks == []
    # Operators still learn what went wrong, and that a secret was hidden.
    assert "bad request from admin:*** (Authorization: Basic ***)" in tasks[0]["message"]
