"""Engine benchmark: how long an NVL72 graceful power_on takes end to end, against the
bare Temporal floor of the same workflow shape, and how many trays ran at once.

    .venv/bin/python bench/engine.py [--runs 5] [--timeline]

Everything is real and local: the embedded Temporal dev server (SQLite file, WAL), the
worker, the API under uvicorn on 127.0.0.1 (free ports), SQLite, the simulator with zero
latency. A run is `PATCH /rack/{id}/power {"state":"on"}` until `GET /task/{id}` says
Succeeded (polled every 20 ms), from a rack whose simulated trays were reset to Off.
The floor runs a bare workflow with the same stages, one child per step, the same number
of activities per tray (no-ops) and the same begin/finish activities, on the same server.
`--timeline` also prints where the last built-in run's time went: its workflow history,
event by event, in milliseconds from the PATCH (workflow tasks, activities scheduled,
started, completed, signals).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy import delete
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from temporal_floor import FloorInput, FloorStep, FloorStepWorkflow, FloorTaskWorkflow, noop

with workflow.unsafe.imports_passed_through():
    from nico.api.app import create_app
    from nico.auth.tokens import mint_dev_token
    from nico.config import Settings
    from nico.domain import OperationType
    from nico.engine.devserver import EmbeddedTemporal
    from nico.engine.payloads import TaskWorkflowResult
    from nico.rules.builtins import builtin_rule
    from nico.rules.model import RuleDefinition
    from nico.runner import engine_running
    from nico.seed import seed_demo
    from nico.services import Services, build_services
    from nico.store.models import SimTrayState, Tray

BASE = "/v2/org/demo/nico"
FLOOR_QUEUE = "bench-floor"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def floor_shape(definition: RuleDefinition, trays_by_type: dict[str, int]) -> FloorInput:
    """The rule's stages with one child per targeted step and its activities per tray."""
    stages = []
    for stage in definition.stages():
        steps = [
            FloorStep(trays_by_type[s.component_type.value], len(list(s.actions())))
            for _, s in stage.steps
            if trays_by_type.get(s.component_type.value)
        ]
        if steps:
            stages.append(steps)
    return FloorInput(stages)


async def floor_runs(client: Client, shape: FloorInput, runs: int) -> list[float]:
    seconds = []
    async with Worker(
        client,
        task_queue=FLOOR_QUEUE,
        workflows=[FloorTaskWorkflow, FloorStepWorkflow],
        activities=[noop],
        max_concurrent_activities=200,
    ):
        for _ in range(runs):
            started = time.perf_counter()
            await client.execute_workflow(
                FloorTaskWorkflow.run, shape, id=f"floor-{uuid.uuid4()}", task_queue=FLOOR_QUEUE
            )
            seconds.append(time.perf_counter() - started)
    return seconds


# --- the real thing -------------------------------------------------------------------------


@dataclass
class Variant:
    label: str
    rule_id: str | None
    definition: RuleDefinition


@dataclass
class Measured:
    variant: Variant
    seconds: list[float]
    result: TaskWorkflowResult
    events_per_step: float = 0.0
    timeline: list[tuple[float, str]] | None = None


async def timeline(client: Client, task_id: str, sent: float) -> list[tuple[float, str]]:
    """The task workflow's history as (ms after the PATCH, what happened)."""
    history = await client.get_workflow_handle(task_id).fetch_history()
    names: dict[int, str] = {}
    rows = []
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        what = kind
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
            what = f"{kind} {names[event.event_id]}"
        for field in ("started", "completed", "failed", "canceled", "timed_out"):
            attrs = f"activity_task_{field}_event_attributes"
            if event.HasField(attrs):
                what = f"{kind} {names.get(getattr(event, attrs).scheduled_event_id, '?')}"
        if event.HasField("workflow_execution_signaled_event_attributes"):
            what = f"{kind} {event.workflow_execution_signaled_event_attributes.signal_name}"
        rows.append((event.event_time.ToDatetime().timestamp() * 1000 - sent * 1000, what))
    return rows


async def history_events(client: Client, task_id: str, result: TaskWorkflowResult) -> float:
    """Temporal history events per step of one task: the task workflow's and, for engines
    that run a child workflow per step, the children's."""
    total = len((await client.get_workflow_handle(task_id).fetch_history()).events)
    for summary in result.steps:
        child = f"{task_id}/stage-{summary.stage}/step-0"
        try:
            total += len((await client.get_workflow_handle(child).fetch_history()).events)
        except Exception:  # no child: the step ran inside the task workflow
            continue
    return total / max(len(result.steps), 1)


async def reset_rack(services: Services) -> None:
    """Every simulated tray back to Off (fresh state rows), observed state forgotten."""
    async with services.db.session() as session:
        await session.execute(delete(SimTrayState))
        await session.execute(Tray.__table__.update().values(power_state="Unknown"))


async def power_on_once(
    http: httpx.AsyncClient, client: Client, site_id: str, rack_id: str, rule_id: str | None
) -> tuple[float, TaskWorkflowResult, str, float]:
    body: dict[str, Any] = {"siteId": site_id, "state": "on"}
    if rule_id:
        body["ruleId"] = rule_id
    started = time.perf_counter()
    sent = time.time()
    response = await http.patch(f"{BASE}/rack/{rack_id}/power", json=body)
    response.raise_for_status()
    task_id = response.json()["taskIds"][0]
    while True:
        task = (await http.get(f"{BASE}/task/{task_id}", params={"siteId": site_id})).json()
        if task["status"] in ("Succeeded", "Failed", "Terminated"):
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    if task["status"] != "Succeeded":
        raise SystemExit(f"task {task_id} ended {task['status']}: {task['message']}")
    handle = client.get_workflow_handle(task_id, result_type=TaskWorkflowResult)
    return elapsed, await handle.result(), task_id, sent


async def create_windowed_rule(
    http: httpx.AsyncClient, site_id: str, base: dict[str, Any], window: int
) -> Variant:
    definition = copy.deepcopy(base)
    for step in definition["steps"]:
        step["maxParallel"] = window
    response = await http.post(
        f"{BASE}/task/rule",
        json={
            "siteId": site_id,
            "name": f"bench power_on window {window}",
            "operationType": "PowerControl",
            "operationCode": "power_on",
            "ruleDefinition": definition,
        },
    )
    response.raise_for_status()
    return Variant(
        f"maxParallel {window}", response.json()["id"], RuleDefinition.from_wire(definition)
    )


async def bench(runs: int, window: int, show_timeline: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="nico-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            port=free_port(),
            temporal_dev_port=free_port(),
            sim_latency=0.0,
            sim_firmware_duration=0.0,
            secret_key=Fernet.generate_key().decode(),
            auth_dev_key="bench-" + uuid.uuid4().hex,
            sweep_interval=3600.0,
            state_sync_interval=0.0,
            log_level="WARNING",
        )
        services = build_services(settings, create_keys=True)
        await services.db.migrate()
        demo = await seed_demo(services)
        site_id, rack_id = str(demo.site_id), str(demo.rack_id)
        token = mint_dev_token(settings.auth_dev_key or "", "demo", ["PROVIDER_ADMIN"])
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(services),
                host="127.0.0.1",
                port=settings.port,
                log_level="warning",
                lifespan="off",
            )
        )
        async with EmbeddedTemporal(settings) as client, engine_running(services, client):
            api = asyncio.create_task(server.serve())
            for _ in range(500):  # up to 10 s for uvicorn to bind
                if server.started:
                    break
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as http:
                builtin = builtin_rule(OperationType.POWER_CONTROL, "power_on")
                variants = [
                    Variant("built-in default", None, builtin.definition),
                    await create_windowed_rule(http, site_id, builtin.definition_wire, window),
                ]
                measured = []
                for variant in variants:
                    await reset_rack(services)  # warm-up run, not counted
                    await power_on_once(http, client, site_id, rack_id, variant.rule_id)
                    seconds: list[float] = []
                    result: TaskWorkflowResult | None = None
                    task_id = ""
                    sent = 0.0
                    for _ in range(runs):
                        await reset_rack(services)
                        elapsed, result, task_id, sent = await power_on_once(
                            http, client, site_id, rack_id, variant.rule_id
                        )
                        seconds.append(elapsed)
                    assert result is not None
                    events = await history_events(client, task_id, result)
                    line = await timeline(client, task_id, sent) if show_timeline else None
                    measured.append(Measured(variant, seconds, result, events, line))
                    show_timeline = False  # the built-in rule's only
            trays = {"PowerShelf": 8, "NVLSwitch": 9, "Compute": 18}
            floors = {
                m.variant.label: await floor_runs(
                    client, floor_shape(m.variant.definition, trays), runs + 1
                )
                for m in measured
            }
            server.should_exit = True
            await api
        await services.backends.aclose()
        await services.db.dispose()
    print_table(runs, measured, {k: v[1:] for k, v in floors.items()})
    for m in measured:
        if m.timeline:
            print(f"\ntimeline of the last {m.variant.label} run (ms after the PATCH)")
            for offset, what in m.timeline:
                print(f"{offset:>8.1f}  {what}")


def print_table(runs: int, measured: list[Measured], floors: dict[str, list[float]]) -> None:
    print("\nNVL72 graceful power_on (8 PowerShelf, 9 NVLSwitch, 18 Compute), zero-latency")
    print(f"simulator, embedded Temporal dev server, median of {runs} runs after a warm-up\n")
    header = (
        f"{'rule':<18} {'POST->Succeeded':>16} {'bare Temporal':>14} {'ratio':>7} "
        f"{'events/step':>12}"
    )
    print(header)
    print("-" * len(header))
    for m in measured:
        ours = statistics.median(m.seconds)
        floor = statistics.median(floors[m.variant.label])
        print(
            f"{m.variant.label:<18} {ours:>14.3f} s {floor:>12.3f} s {ours / floor:>6.1f}x "
            f"{m.events_per_step:>12.0f}"
        )
    print("\nobserved trays in flight per step")
    header = f"{'rule':<18} {'stage':>5} {'type':<11} {'trays':>5} {'maxParallel':>12} {'peak':>5}"
    print(header)
    print("-" * len(header))
    for m in measured:
        for s in m.result.steps:
            window = "0 (all)" if s.max_parallel == 0 else str(s.max_parallel)
            print(
                f"{m.variant.label:<18} {s.stage:>5} {s.component_type:<11} {s.total:>5} "
                f"{window:>12} {s.peak_in_flight:>5}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per variant (>= 5)")
    parser.add_argument("--window", type=int, default=4, help="maxParallel of the pinned rule")
    parser.add_argument(
        "--timeline", action="store_true", help="print the last built-in run's history"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(bench(max(args.runs, 5), args.window, args.timeline))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
