"""Builders for engine tests: small simulated racks, task rows, rules, faults.

Tasks are created as the task manager would (a Pending `tasks` row + `task_trays`) and
started through `nico.engine.client`, so the workflow sees exactly what production sends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from nico.domain import ComponentType, TaskStatus
from nico.engine.contracts import TaskWorkflowInput, TrayTarget
from nico.services import Services
from nico.store.models import Provider, Rack, SimFault, SimTrayState, Site, Task, Tray
from nico.store.tasks import add_task


@dataclass
class SimRack:
    site_id: uuid.UUID
    rack_id: uuid.UUID
    trays: dict[str, list[TrayTarget]] = field(default_factory=dict)

    def of(self, kind: str) -> list[TrayTarget]:
        return self.trays.get(kind, [])

    @property
    def all(self) -> list[TrayTarget]:
        return [t for ts in self.trays.values() for t in ts]


_NAMES = {"Compute": "compute", "NVLSwitch": "nvl", "PowerShelf": "shelf"}


async def make_rack(
    services: Services,
    *,
    compute: int = 4,
    switches: int = 2,
    shelves: int = 2,
    firmware: str = "1.0.0",
    backend: str | None = None,
) -> SimRack:
    """Provider + Flow site + rack with trays named compute-01.., nvl-01.., shelf-01.."""
    tag = uuid.uuid4().hex[:8]
    async with services.db.session() as session:
        provider = Provider(org=f"org-{tag}", name=f"org-{tag}")
        session.add(provider)
        await session.flush()
        site = Site(provider_id=provider.id, name=f"site-{tag}", flow_enabled=True)
        session.add(site)
        await session.flush()
        rack = Rack(site_id=site.id, name=f"rack-{tag}", backend=backend)
        session.add(rack)
        await session.flush()
        made = SimRack(site_id=site.id, rack_id=rack.id)
        for kind, count in (("Compute", compute), ("NVLSwitch", switches), ("PowerShelf", shelves)):
            for n in range(1, count + 1):
                tray = Tray(
                    rack_id=rack.id,
                    site_id=site.id,
                    type=kind,
                    name=f"{_NAMES[kind]}-{n:02d}",
                    serial_number=f"{tag}-{kind}-{n}",
                    firmware_version=firmware,
                )
                session.add(tray)
                await session.flush()
                made.trays.setdefault(kind, []).append(TrayTarget(str(tray.id), tray.name, kind))
    return made


def act(
    name: str, timeout: str | None = None, poll: str | None = None, **params: Any
) -> dict[str, Any]:
    """An ActionConfig in wire form."""
    out: dict[str, Any] = {"name": name}
    if timeout:
        out["timeout"] = timeout
    if poll:
        out["pollInterval"] = poll
    if params:
        out["parameters"] = params
    return out


def step(
    kind: str,
    stage: int,
    main: dict[str, Any],
    *,
    pre: list[dict[str, Any]] | None = None,
    post: list[dict[str, Any]] | None = None,
    max_parallel: int = 0,
    timeout: str | None = None,
    retry: dict[str, Any] | None = None,
    delay_after: str | None = None,
) -> dict[str, Any]:
    """A SequenceStep in wire form."""
    out: dict[str, Any] = {
        "componentType": kind,
        "stage": stage,
        "maxParallel": max_parallel,
        "mainOperation": main,
    }
    if pre:
        out["preOperation"] = pre
    if post:
        out["postOperation"] = post
    if timeout:
        out["timeout"] = timeout
    if retry:
        out["retry"] = retry
    if delay_after:
        out["delayAfter"] = delay_after
    return out


def rule(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"version": "v1", "steps": list(steps)}


def retry(
    attempts: int, initial: str = "1s", coefficient: float = 2, max_interval: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "maxAttempts": attempts,
        "initialInterval": initial,
        "backoffCoefficient": coefficient,
    }
    if max_interval:
        out["maxInterval"] = max_interval
    return out


def power_on_rule(max_parallel: int = 0) -> dict[str, Any]:
    """Graceful on: shelves, then switches, then compute, each verified On."""
    verify = [act("VerifyPowerStatus", "1m", "1s", expected_status="on")]
    return rule(
        step("PowerShelf", 1, act("PowerControl"), post=verify, max_parallel=max_parallel),
        step("NVLSwitch", 2, act("PowerControl"), post=verify, max_parallel=max_parallel),
        step("Compute", 3, act("PowerControl"), post=verify, max_parallel=max_parallel),
    )


async def make_task(
    services: Services,
    rack: SimRack,
    rule_definition: dict[str, Any],
    *,
    operation_type: str = "PowerControl",
    operation_code: str = "power_on",
    trays: list[TrayTarget] | None = None,
    info: dict[str, Any] | None = None,
) -> TaskWorkflowInput:
    """A Pending task row (as the task manager writes it) and its workflow input."""
    targets = trays if trays is not None else rack.all
    task_id = uuid.uuid4()
    async with services.db.session() as session:
        by_type: dict[str, list[str]] = {}
        for t in targets:
            by_type.setdefault(t.type, []).append(t.id)
        task = Task(
            id=task_id,
            site_id=rack.site_id,
            rack_id=rack.rack_id,
            operation_type=operation_type,
            operation_code=operation_code,
            status=TaskStatus.PENDING.value,
            information=info or {},
            targets=by_type,
            rule_definition=rule_definition,
            rule_source="builtin",
        )
        await add_task(session, task)
    return TaskWorkflowInput(
        task_id=str(task_id),
        site_id=str(rack.site_id),
        rack_id=str(rack.rack_id),
        operation_type=operation_type,
        operation_code=operation_code,
        rule_definition=rule_definition,
        trays=targets,
        info=info or {},
    )


async def load_tray(services: Services, tray_id: str) -> Tray:
    async with services.db.session() as session:
        tray = await session.get(Tray, uuid.UUID(tray_id), populate_existing=True)
        assert tray is not None
        return tray


async def sim_state(services: Services, tray_id: str) -> SimTrayState | None:
    async with services.db.session() as session:
        result = await session.execute(
            select(SimTrayState)
            .where(SimTrayState.tray_id == uuid.UUID(tray_id))
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()


async def add_fault(
    services: Services,
    rack: SimRack,
    kind: str,
    *,
    tray: TrayTarget | None = None,
    component_type: str | None = None,
    remaining: int | None = None,
    slow_seconds: float | None = None,
) -> uuid.UUID:
    async with services.db.session() as session:
        fault = SimFault(
            site_id=rack.site_id,
            tray_id=uuid.UUID(tray.id) if tray else None,
            component_type=ComponentType.parse(component_type).value if component_type else None,
            kind=kind,
            remaining=remaining,
            slow_seconds=slow_seconds,
        )
        session.add(fault)
        await session.flush()
        return fault.id


async def fault_remaining(services: Services, fault_id: uuid.UUID) -> int | None:
    async with services.db.session() as session:
        fault = await session.get(SimFault, fault_id, populate_existing=True)
        assert fault is not None
        return fault.remaining
