"""The rack simulator: the default `TrayBackend`, with persistent per-tray state.

Physics, kept small but honest enough to exercise rules:
- every call takes `NICO_SIM_LATENCY` seconds; a power transition completes that long
  after the command was accepted (PoweringOn/PoweringOff until then);
- Compute and NVLSwitch BMCs answer only while at least one PowerShelf of the rack is On
  (a rack without PowerShelf trays counts as fed); an unfed tray reads as power Off, a
  power-off command to it is accepted as a no-op (it is off: nothing to do), and every
  other command and firmware/bring-up call to it fails with "BMC unreachable";
- a firmware update takes `NICO_SIM_FIRMWARE_DURATION` seconds and reports progress;
- bring-up: a tray is Ingested once its gate is open (BringUpControl) and it is On;
- injected faults (`sim_faults`, see `nico.store.simulator.FaultKind`) are evaluated on
  every call.
State lives in the database, so a restarted worker continues where the last one left off.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nico.config import Settings
from nico.domain import OPERABLE_COMPONENT_TYPES, ComponentType, FirmwareComponent, PowerState
from nico.hardware.interface import (
    BringUpState,
    Capability,
    FirmwareInventory,
    FirmwareJob,
    FirmwareJobState,
    HardwareError,
    TrayRef,
    UnsupportedOperation,
)
from nico.store import simulator as sim_store
from nico.store.batching import Batcher
from nico.store.db import Database
from nico.store.models import SimFault, SimTrayState, Tray, utcnow
from nico.store.simulator import FaultKind

ALL_CAPABILITIES: frozenset[Capability] = frozenset(Capability)
# Only a power shelf cuts AC; the trays it feeds cannot cycle their own input.
TRAY_CAPABILITIES: frozenset[Capability] = ALL_CAPABILITIES - {Capability.AC_POWER_CYCLE}

_POWER_ON_CODES = frozenset({"power_on", "force_power_on"})
_POWER_OFF_CODES = frozenset({"power_off", "force_power_off"})
_CYCLE_CODES = frozenset({"restart", "force_restart", "warm_reset", "cold_reset"})
_AC_CYCLE = "ac_power_cycle"

UNFED_MESSAGE = "BMC unreachable: no PowerShelf of the rack is on"
FAULT_UNREACHABLE_MESSAGE = "BMC unreachable (injected fault)"


def observed_power(state: SimTrayState, now: datetime) -> PowerState:
    """Power as a BMC would report it now, transitions included."""
    if state.power_target is not None and not sim_store.transition_due(state, now):
        return PowerState.POWERING_ON if state.power_target else PowerState.POWERING_OFF
    return PowerState.ON if sim_store.powered_at(state, now) else PowerState.OFF


def effective_firmware(state: SimTrayState, now: datetime) -> str:
    """The running version: a finished, successful job's target counts as installed."""
    if (
        state.firmware_target is not None
        and state.firmware_done_at is not None
        and state.firmware_done_at <= now
        and not state.firmware_failed
    ):
        return state.firmware_target
    return state.firmware_version


def settle_firmware(state: SimTrayState, now: datetime) -> None:
    """Make a finished job's version the stored one before anything overwrites the job."""
    state.firmware_version = effective_firmware(state, now)


# The firmware components a simulated BMC lists per tray type, main one first. A
# simulated update installs a bundle: every component runs the tray's firmware version.
SIM_COMPONENTS: dict[ComponentType, tuple[str, ...]] = {
    ComponentType.COMPUTE: ("BMC", "BIOS", "DPU"),
    ComponentType.NVLSWITCH: ("BMC", "CPLD", "BIOS", "NVOS"),
    ComponentType.POWERSHELF: ("PMC", "PSU"),
}


def sim_inventory(component_type: ComponentType, version: str) -> FirmwareInventory:
    names = SIM_COMPONENTS.get(component_type, ("BMC",))
    return FirmwareInventory(
        tuple(FirmwareComponent(name, version, f"{name}_0") for name in names), version
    )


def firmware_job_id(operation_key: str) -> str:
    """A stable job id per operation key, so a retried start finds its own job."""
    return "sim-" + hashlib.sha256(operation_key.encode()).hexdigest()[:20]


@dataclass
class _Call:
    """What one backend call learned before its latency: the tray and its live faults."""

    tray: Tray
    faults: list[SimFault]

    def fault(self, *kinds: FaultKind) -> SimFault | None:
        wanted = {k.value for k in kinds}
        return next((f for f in self.faults if f.kind in wanted), None)


_SERIALS = itertools.count()


@dataclass(frozen=True)
class _CallKey:
    """One backend call's claim on its tray's row (every call is its own: a limited
    per-call fault fires once per call, not once per batch)."""

    tray_id: uuid.UUID
    serial: int = field(default_factory=lambda: next(_SERIALS))


@dataclass(frozen=True)
class _View:
    """A tray's simulated state as read now, and whether a shelf of its rack feeds it."""

    state: SimTrayState
    fed: bool
    now: datetime


@dataclass(eq=False)
class _PowerCall:
    call: _Call
    code: str
    operation_key: str


class SimulatorBackend:
    """`TrayBackend` over the simulated state in the database."""

    name = "simulator"

    def __init__(self, settings: Settings, db: Database) -> None:
        self._latency = max(settings.sim_latency, 0.0)
        self._firmware_duration = max(settings.sim_firmware_duration, 0.0)
        self._db = db
        self._calls = Batcher(self._load_calls, concurrency=4)
        self._views = Batcher(self._load_views, concurrency=4)
        # Writers take SQLite's write lock one after another anyway.
        self._powers = Batcher(self._apply_powers)

    def capabilities(self, component_type: ComponentType) -> frozenset[Capability]:
        if component_type is ComponentType.POWERSHELF:
            return ALL_CAPABILITIES
        return TRAY_CAPABILITIES if component_type in OPERABLE_COMPONENT_TYPES else frozenset()

    # --- plumbing -------------------------------------------------------------------
    #
    # Calls made at the same time (the trays of a step, the steps of many racks) share
    # their database work: one query for the trays and their faults, one for the state
    # rows and the racks' shelves, one transaction for many power commands
    # (`nico.store.batching`). Each call still sees what a call of its own would have.

    async def _begin(self, ref: TrayRef) -> _Call:
        """Read the tray and its live faults, then take the call's latency (plus any
        injected slowness) outside any transaction."""
        call = await self._calls(_CallKey(uuid.UUID(ref.id)))
        if call is None:
            raise HardwareError(f"tray {ref.name or ref.id} no longer exists", retryable=False)
        extra = sum(f.slow_seconds or 0.0 for f in call.faults if f.kind == FaultKind.SLOW.value)
        if self._latency + extra > 0:
            await asyncio.sleep(self._latency + extra)
        return call

    async def _load_calls(self, keys: list[_CallKey]) -> dict[_CallKey, _Call | None]:
        async with self._db.session() as session:
            ids = list({k.tray_id for k in keys})
            result = await session.execute(select(Tray).where(Tray.id.in_(ids)))
            trays = {t.id: t for t in result.scalars().all()}
            calls = [k for k in keys if k.tray_id in trays]
            faults = await sim_store.faults_for_calls(
                session, [trays[k.tray_id] for k in calls], utcnow()
            )
        out: dict[_CallKey, _Call | None] = {k: None for k in keys}
        out.update({k: _Call(trays[k.tray_id], f) for k, f in zip(calls, faults, strict=True)})
        return out

    async def _view(self, call: _Call) -> _View:
        """The tray's state row and whether its rack's shelves feed it, as of now."""
        return await self._views(call.tray)

    async def _load_views(self, trays: list[Tray]) -> dict[Tray, _View]:
        async with self._db.session() as session:
            now = utcnow()
            states = await sim_store.read_states(session, trays)
            fed = await sim_store.racks_fed(
                session,
                {t.rack_id for t in trays if t.type != ComponentType.POWERSHELF.value},
                now,
            )
        return {t: _View(states[t.id], fed.get(t.rack_id, True), now) for t in trays}

    async def _bmc_problem(self, session: AsyncSession, call: _Call, now: datetime) -> str | None:
        """Why this tray's BMC does not answer right now, or None."""
        if call.fault(FaultKind.UNREACHABLE):
            return FAULT_UNREACHABLE_MESSAGE
        if not await self._fed(session, call.tray, now):
            return UNFED_MESSAGE
        return None

    async def _fed(self, session: AsyncSession, tray: Tray, now: datetime) -> bool:
        if tray.type == ComponentType.POWERSHELF.value:
            return True
        shelves, on = await sim_store.shelves_on(session, tray.rack_id, now)
        return not shelves or on > 0

    async def _answering(self, session: AsyncSession, call: _Call) -> datetime:
        """Now, after checking the tray's BMC answers (raises HardwareError otherwise)."""
        now = utcnow()
        problem = await self._bmc_problem(session, call, now)
        if problem is not None:
            raise HardwareError(problem)
        return now

    @staticmethod
    def _answering_view(call: _Call, view: _View) -> None:
        """`_answering` over a view already read."""
        if call.fault(FaultKind.UNREACHABLE):
            raise HardwareError(FAULT_UNREACHABLE_MESSAGE, unreachable=True)
        if not view.fed:
            raise HardwareError(UNFED_MESSAGE)

    # --- power ----------------------------------------------------------------------

    async def power_control(self, tray: TrayRef, code: str, *, operation_key: str) -> None:
        if code not in _POWER_ON_CODES | _POWER_OFF_CODES | _CYCLE_CODES | {_AC_CYCLE}:
            raise UnsupportedOperation(f"unknown power operation {code!r}")
        if code == _AC_CYCLE and tray.type is not ComponentType.POWERSHELF:
            raise UnsupportedOperation(
                f"{code} is carried out by a PowerShelf; {tray.name or tray.id} is a "
                f"{tray.type.value} tray"
            )
        call = await self._begin(tray)
        failure = await self._powers(_PowerCall(call, code, operation_key))
        if failure is not None:  # raised after commit, so a consumed fault stays consumed
            raise HardwareError(failure)

    async def _apply_powers(self, items: list[_PowerCall]) -> dict[_PowerCall, str | None]:
        """Power commands in one transaction, as if sent one after another: the shelves'
        first, so a tray's BMC is fed by a shelf switched on in the same batch."""
        out: dict[_PowerCall, str | None] = {}
        async with self._db.session() as session:
            now = utcnow()
            states = await sim_store.lock_states(session, [i.call.tray for i in items])
            shelf = ComponentType.POWERSHELF.value
            shelves = [i for i in items if i.call.tray.type == shelf]
            others = [i for i in items if i.call.tray.type != shelf]
            for item in shelves:
                out[item] = await self._power_one(session, item, states, True, now)
            fed = await sim_store.racks_fed(session, {i.call.tray.rack_id for i in others}, now)
            for item in others:
                out[item] = await self._power_one(
                    session, item, states, fed[item.call.tray.rack_id], now
                )
        return out

    async def _power_one(
        self,
        session: AsyncSession,
        item: _PowerCall,
        states: dict[uuid.UUID, SimTrayState],
        fed: bool,
        now: datetime,
    ) -> str | None:
        call, code = item.call, item.code
        if call.fault(FaultKind.UNREACHABLE):
            return FAULT_UNREACHABLE_MESSAGE
        if not fed:
            # No shelf feeds the tray: it is already off, as asked.
            return None if code in _POWER_OFF_CODES else UNFED_MESSAGE
        return await self._apply_power(
            session, call, states[call.tray.id], code, item.operation_key, now
        )

    async def _apply_power(
        self,
        session: AsyncSession,
        call: _Call,
        state: SimTrayState,
        code: str,
        operation_key: str,
        now: datetime,
    ) -> str | None:
        sim_store.settle(state, now)
        if state.power_op_key == operation_key:
            return None  # a retry of a command the BMC already accepted
        fault = call.fault(FaultKind.POWER_FAIL, FaultKind.POWER_STUCK)
        if fault is not None and not await sim_store.consume_fault(session, fault):
            fault = None  # a concurrent call used up its last firing
        if fault is not None and fault.kind == FaultKind.POWER_FAIL.value:
            return f"BMC rejected {code} (injected fault)"
        state.power_ops += 1
        state.power_op_key = operation_key
        if fault is not None:  # POWER_STUCK: accepted, nothing happens
            return None
        if code == _AC_CYCLE:
            await self._cut_feed(session, call.tray, now)
        if code in _CYCLE_CODES or code == _AC_CYCLE:
            state.power_cycles += 1
            state.power_on = False
            target = True
        else:
            target = code in _POWER_ON_CODES
            if state.power_on == target and state.power_target is None:
                return None  # already there: accepted as a no-op
        self._transition(state, target, now)
        return None

    async def _cut_feed(self, session: AsyncSession, shelf: Tray, now: datetime) -> None:
        """A shelf's AC cut and restored: every Compute and NVLSwitch tray of its rack (the
        simulator feeds a rack's trays from all its shelves alike) loses power and comes
        back On when the shelf does (restore policy: on), its reset marker moved."""
        for tray in await sim_store.fed_trays(session, shelf.rack_id):
            state = await sim_store.lock_state(session, tray)
            sim_store.settle(state, now)
            state.power_cycles += 1
            state.power_on = False
            self._transition(state, True, now)

    def _transition(self, state: SimTrayState, target: bool, now: datetime) -> None:
        if self._latency > 0:
            state.power_target = target
            state.power_ready_at = now + timedelta(seconds=self._latency)
        else:
            state.power_on = target
            state.power_target = None
            state.power_ready_at = None

    async def power_status(self, tray: TrayRef) -> PowerState:
        call = await self._begin(tray)
        if call.fault(FaultKind.UNREACHABLE):
            raise HardwareError(FAULT_UNREACHABLE_MESSAGE, unreachable=True)
        view = await self._view(call)
        if not view.fed:
            return PowerState.OFF
        return observed_power(view.state, view.now)

    async def reachable(self, tray: TrayRef) -> bool:
        call = await self._begin(tray)
        if call.fault(FaultKind.UNREACHABLE):
            return False
        return (await self._view(call)).fed

    async def reset_marker(self, tray: TrayRef) -> str | None:
        """How many power cycles this simulated BMC carried out (its boot counter)."""
        call = await self._begin(tray)
        view = await self._view(call)
        self._answering_view(call, view)
        return str(view.state.power_cycles)

    # --- firmware -------------------------------------------------------------------

    async def firmware_start(
        self, tray: TrayRef, version: str | None, targets: tuple[str, ...], *, operation_key: str
    ) -> str:
        call = await self._begin(tray)
        job_id = firmware_job_id(operation_key)
        async with self._db.session() as session:
            now = await self._answering(session, call)
            state = await sim_store.lock_state(session, call.tray)
            if state.firmware_job_id == job_id:
                return job_id
            settle_firmware(state, now)
            fault = call.fault(FaultKind.FIRMWARE_FAIL, FaultKind.FIRMWARE_HANG)
            if fault is not None and not await sim_store.consume_fault(session, fault):
                fault = None
            hang = fault is not None and fault.kind == FaultKind.FIRMWARE_HANG.value
            state.firmware_job_id = job_id
            state.firmware_target = version or state.firmware_version
            state.firmware_started_at = now
            state.firmware_done_at = (
                None if hang else now + timedelta(seconds=self._firmware_duration)
            )
            state.firmware_failed = fault is not None and not hang
            return job_id

    async def firmware_status(self, tray: TrayRef, job_id: str) -> FirmwareJob:
        call = await self._begin(tray)
        view = await self._view(call)
        self._answering_view(call, view)
        state, now = view.state, view.now
        if state.firmware_job_id != job_id:
            raise HardwareError(f"BMC knows no firmware job {job_id}", retryable=False)
        started = state.firmware_started_at or now
        if state.firmware_done_at is None:  # hung: stuck half way
            return FirmwareJob(job_id, FirmwareJobState.RUNNING, 50, "update in progress")
        if state.firmware_done_at <= now:
            if state.firmware_failed:
                return FirmwareJob(
                    job_id, FirmwareJobState.FAILED, 100, "image rejected (injected fault)"
                )
            return FirmwareJob(job_id, FirmwareJobState.COMPLETED, 100, "update complete")
        total = (state.firmware_done_at - started).total_seconds()
        done = (now - started).total_seconds()
        percent = int(min(99, max(0, done / total * 100))) if total > 0 else 99
        return FirmwareJob(job_id, FirmwareJobState.RUNNING, percent, "update in progress")

    async def firmware_version(self, tray: TrayRef) -> str:
        call = await self._begin(tray)
        view = await self._view(call)
        self._answering_view(call, view)
        return effective_firmware(view.state, view.now)

    async def firmware_inventory(self, tray: TrayRef) -> FirmwareInventory:
        return sim_inventory(tray.type, await self.firmware_version(tray))

    # --- bring-up and inventory -----------------------------------------------------

    async def bring_up_control(self, tray: TrayRef) -> None:
        call = await self._begin(tray)
        async with self._db.session() as session:
            await self._answering(session, call)
            state = await sim_store.lock_state(session, call.tray)
            state.bring_up_open = True

    async def bring_up_status(self, tray: TrayRef) -> BringUpState:
        call = await self._begin(tray)
        view = await self._view(call)
        if call.fault(FaultKind.UNREACHABLE) or not view.fed:
            return BringUpState.NOT_DISCOVERED
        if view.state.bring_up_open and observed_power(view.state, view.now) is PowerState.ON:
            return BringUpState.INGESTED
        return BringUpState.WAITING_FOR_INGESTION

    async def inject_expectation(self, tray: TrayRef) -> None:
        call = await self._begin(tray)
        async with self._db.session() as session:
            state = await sim_store.lock_state(session, call.tray)
            state.expectation_injected = True

    async def aclose(self) -> None:
        return None
