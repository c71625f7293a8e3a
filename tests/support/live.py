"""Black-box E2E support: the real app under uvicorn on a free 127.0.0.1 port, a real
engine worker on the time-skipping Temporal server, and an HTTP client with a real token.

    @pytest.fixture
    async def live(temporal_env, services, auth):
        rack = await make_site_with_rack(services)
        async with live_api(services, temporal_env, auth, rack) as live:
            yield live

    [task_id] = await live.operate("PATCH", f"/rack/{live.rack.rack_id}/power", {"state": "on"})
    done = await live.finished(task_id)       # time skips while the workflow runs
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from temporalio.testing import WorkflowEnvironment

from nico.api.app import create_app
from nico.services import Services
from nico.tasks.background import on_task_finished
from tests.support.inventory import MadeRack
from tests.support.seed000 import assert_valid_task
from tests.support.temporal import running_worker, wait_for_task_workflow

BASE = "/v2/org/demo/nico"


@dataclass
class Live:
    http: httpx.AsyncClient
    rack: MadeRack
    env: WorkflowEnvironment

    @property
    def site(self) -> dict[str, str]:
        return {"siteId": str(self.rack.site_id)}

    def tray_id(self, name: str) -> str:
        """The id of the rack's tray called `name` (e.g. `compute-07`)."""
        return str(next(i for i, n in self.rack.tray_names.items() if n == name))

    async def operate(
        self, method: str, path: str, body: dict[str, Any], **headers: str
    ) -> list[str]:
        response = await self.http.request(
            method, BASE + path, json=self.site | body, headers=headers
        )
        assert response.status_code == 200, response.text
        ids: list[str] = response.json()["taskIds"]
        return ids

    async def task(self, task_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{BASE}/task/{task_id}", params=self.site)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert_valid_task(body)
        return body

    async def finished(self, task_id: str) -> dict[str, Any]:
        """Let the workflow run to its end (skipping time), then read the task."""
        await wait_for_task_workflow(self.env, task_id)
        return await self.task(task_id)

    async def until(
        self, task_id: str, status: str, stage_status: str | None = None
    ) -> dict[str, Any]:
        """Poll (in real time, so nothing skips ahead) until the task, and optionally its
        first report stage, reach the given statuses."""
        for _ in range(200):
            body = await self.task(task_id)
            stages = body.get("report", {}).get("stages", [{}])
            if body["status"] == status and stage_status in (None, stages[0].get("status")):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"task {task_id} never reached {status}/{stage_status}: {body}")

    async def power_on(self) -> None:
        """The simulated rack starts unpowered; most operations need it on."""
        [task_id] = await self.operate("PATCH", f"/rack/{self.rack.rack_id}/power", {"state": "on"})
        done = await self.finished(task_id)
        assert done["status"] == "Succeeded", done

    async def create_rule(self, body: dict[str, Any]) -> str:
        """`POST /task/rule` in this site; returns the rule id."""
        response = await self.http.post(f"{BASE}/task/rule", json=self.site | body)
        assert response.status_code == 201, response.text
        rule_id: str = response.json()["id"]
        return rule_id


def made_rack(rack: dict[str, Any]) -> MadeRack:
    """A `MadeRack` from a `POST /rack` answer (with `components`)."""
    trays: dict[str, list[uuid.UUID]] = {}
    names: dict[uuid.UUID, str] = {}
    for component in sorted(rack["components"], key=lambda c: c["name"]):
        tray_id = uuid.UUID(component["id"])
        trays.setdefault(component["type"], []).append(tray_id)
        names[tray_id] = component["name"]
    return MadeRack(
        site_id=uuid.UUID(rack["siteId"]),
        rack_id=uuid.UUID(rack["id"]),
        trays=trays,
        tray_names=names,
    )


@asynccontextmanager
async def live_api(
    services: Services, env: WorkflowEnvironment, auth: dict[str, str], rack: MadeRack
) -> AsyncIterator[Live]:
    """Serve `services` over real HTTP with a worker on `env` until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    async with running_worker(env.client, services, on_task_finished=on_task_finished(services)):
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30
            ) as http:
                yield Live(http, rack, env)
        finally:
            server.should_exit = True
            await serving
            sock.close()
