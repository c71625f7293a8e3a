"""The engine's hardware operations, once: what the per-call activities (tasks started
before the step activity) and the step runner (`nico.engine.step_runner`) both do to a
tray.

Plain async methods over the process's services: no Temporal here, so the caller decides
how an attempt is bounded, retried and heartbeated. Every database read or write and every
backend call runs through `nico.engine.infra.retrying`: an outage of nico's own database
or Temporal is waited out and never spends a hardware attempt. Side effects (power
commands, firmware starts) go through the operation ledger (`nico.engine.ledger`): an
accepted one is never sent again, and a power cycle is verified by the tray's reset
marker, never sent twice. Every observed power state and firmware version is recorded as
the tray's observed state with the task on its history rows (`nico.engine.observed`), so
`GET /tray` shows what the engine last saw.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nico import logs
from nico.domain import AC_POWER_CYCLE, ComponentType
from nico.engine import ledger, messages
from nico.engine import payloads as p
from nico.engine.infra import InfrastructureUnavailable, retrying
from nico.engine.observed import TaskObservations
from nico.hardware.interface import FirmwareInventory, HardwareError, TrayBackend, TrayRef
from nico.hardware.registry import BackendRegistry
from nico.rules.durations import format_seconds
from nico.services import Services
from nico.store import stalls
from nico.store.batching import Batcher
from nico.store.models import Tray, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

# Waits before each look at a reset marker after a cycle was accepted (seconds).
CYCLE_CHECK_PAUSES = (0.0, 0.5, 1.0, 2.0)
# How long an AC power cycle waits for every tray behind the shelf to show its cycle:
# their BMCs lose power with the shelf and answer again only once it is back.
FED_CYCLE_WINDOW = 180.0
FED_CYCLE_PAUSE_CAP = 5.0


class AttemptExpired(Exception):
    """The attempt used up its time; its work was cancelled before anyone gave up on it."""


class _Batches:
    """The database work of one process's tray operations, shared by all its steps:
    calls made at the same time (a step's trays, many racks' steps) become one
    statement each (`nico.store.batching`)."""

    def __init__(self, services: Services) -> None:
        self.db = services.db
        self.registry = services.backends
        self.refs = Batcher(self._refs, concurrency=4)
        self.ledger = Batcher(self._ledger, concurrency=4)
        self.accepted = Batcher(self._accept)

    async def _refs(self, tray_ids: list[str]) -> dict[str, TrayRef | BaseException]:
        refs: dict[str, TrayRef | BaseException] = {}
        try:
            refs.update(await self.registry.tray_refs(tray_ids))
        except HardwareError:
            # One tray's endpoint cannot be read (a key that no longer decrypts its
            # password): that tray fails, not the others of the batch.
            for tray_id in tray_ids:
                try:
                    refs.update(await self.registry.tray_refs([tray_id]))
                except HardwareError as exc:
                    refs[tray_id] = exc
        for tray_id in tray_ids:
            if tray_id not in refs:
                refs[tray_id] = HardwareError(f"tray {tray_id} no longer exists", retryable=False)
        return refs

    async def _ledger(self, keys: list[str]) -> dict[str, ledger.Entry | None]:
        async with self.db.session() as session:
            found = await ledger.lookup_many(session, keys)
        return {key: found.get(key) for key in keys}

    async def _accept(self, entries: list[_Accepted]) -> dict[_Accepted, None]:
        async with self.db.session() as session:
            await ledger.record_many(
                session, [(e.key, e.tray_id, e.action, e.result) for e in entries]
            )
        return dict.fromkeys(entries)


@dataclass(eq=False)
class _Accepted:
    """A side effect the BMC accepted, for the ledger (`ledger.record`)."""

    key: str
    tray_id: str
    action: str
    result: dict[str, Any]


class HardwareOps:
    """Tray operations bound to one process's services."""

    def __init__(
        self,
        services: Services,
        *,
        remember_trays: bool = False,
        task_id: str | None = None,
        batches: _Batches | None = None,
    ) -> None:
        self._services = services
        self.registry: BackendRegistry = services.backends
        self._batches = batches or _Batches(services)
        # Tray references already looked up (None: look up on every call).
        self._refs: dict[str, TrayRef] | None = {} if remember_trays else None
        # A step's reads are written in batches; the per-call activities' at once.
        self.observed = TaskObservations(services, task_id, batched=remember_trays)
        # When each tray's power read in progress was sent (`power_unanswered`).
        self._power_sent: dict[str, datetime] = {}

    @property
    def services(self) -> Services:
        return self._services

    def for_step(self, task_id: str | None = None) -> HardwareOps:
        """Operations for one step: each tray's reference (inventory, BMC endpoint) is
        read once per step attempt instead of once per call and poll; an edit of the
        tray's BMC during a step is seen by the next step (or a retried attempt). Its
        observations are batched: `observed.close()` when the step ends."""
        return HardwareOps(
            self._services, remember_trays=True, task_id=task_id, batches=self._batches
        )

    async def db(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """One transaction, made again (whole) after a database outage."""

        async def once() -> T:
            async with self._services.db.session() as session:
                return await work(session)

        return await retrying(once)

    async def target(self, tray_id: str) -> tuple[TrayRef, TrayBackend]:
        ref = self._refs.get(tray_id) if self._refs is not None else None
        if ref is None:
            ref = await retrying(lambda: self._batches.refs(tray_id))
            if self._refs is not None:
                self._refs[tray_id] = ref
        logs.remember_rack(ref.rack_id)  # later lines of this task name its rack
        return ref, self.registry.backend_for(ref)

    async def _lookup(self, key: str) -> ledger.Entry | None:
        return await retrying(lambda: self._batches.ledger(key))

    async def _accepted(self, key: str, tray_id: str, action: str, result: dict[str, Any]) -> None:
        """Record that the BMC took the action. The record lands even when the attempt is
        cancelled meanwhile (its deadline, while the entry waits for its batch): dropped,
        the retry would find no acceptance and send the action a second time. The wait is
        one on the database: a deadline that cuts it while the write stalls is not the
        BMC's (`nico.store.stalls`)."""
        entry = _Accepted(key, tray_id, action, result)
        write = asyncio.ensure_future(retrying(lambda: self._batches.accepted(entry)))
        with stalls.waiting():
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # Finish the record, then let the cancel go on whatever became of the
                # record: an error of the write must not take the cancel's place.
                try:
                    await asyncio.shield(write)
                except Exception as exc:
                    log.warning("acceptance of %s not recorded: %s", key, error_text(exc))
                raise

    async def _known_refs(self, tray_ids: list[str]) -> dict[str, TrayRef]:
        """References of the trays that still exist (remembered for the step, as `target`;
        a poll that asks again finds them without a task per tray)."""
        known = self._refs or {}
        missing = [t for t in tray_ids if t not in known]
        found = dict(
            zip(
                missing, await asyncio.gather(*(self._ref_or_none(t) for t in missing)), strict=True
            )
        )
        refs: dict[str, TrayRef] = {}
        for tray_id in tray_ids:
            ref = known.get(tray_id) or found.get(tray_id)
            if ref is not None:
                refs[tray_id] = ref
        return refs

    async def _ref_or_none(self, tray_id: str) -> TrayRef | None:
        try:
            return (await self.target(tray_id))[0]
        except HardwareError:  # the tray no longer exists
            return None

    async def record_power(self, tray_id: str, state: str, at: datetime | None = None) -> None:
        """Observed power state goes to the tray's observed state, so GET /tray shows it.
        `at`: when the read was sent (default now)."""
        await self.observed.power(tray_id, state, at)

    # --- side effects -----------------------------------------------------------------

    async def power_control(self, data: p.PowerCommand) -> p.PowerResult:
        """Send a power code once. A cycle (restart, resets) is verified by the tray's
        reset marker (`TrayBackend.reset_marker`), read before it is sent and kept with its
        intent in the ledger: accepted but the marker did not move is a failed attempt; a
        retry that finds the intent but no acceptance reads the marker again and knows
        whether the earlier attempt cycled the tray (done) or not (sent now). Without a
        marker the outcome stays unknown and the tray fails saying so; never a silent
        success, never a second cycle."""
        key = data.ledger_key
        cycle = data.code not in ledger.RESENDABLE_POWER_CODES
        entry = await self._lookup(key)
        if entry is not None and entry.accepted:
            return p.PowerResult()
        ref, backend = await self.target(data.tray_id)
        if entry is not None and cycle:
            before = entry.result.get("marker")
            if before is None:
                log.warning("%s under %s: outcome unknown, not resent", data.code, key)
                raise HardwareError(messages.outcome_unknown(data.code), retryable=False)
            if await retrying(lambda: backend.reset_marker(ref)) != before:
                log.warning("%s under %s: the cut-off attempt did cycle", data.code, key)
                await self._accepted(key, data.tray_id, "power", {})
                await self._check_fed_cycled(data.code, entry.result.get("fed") or {})
                return p.PowerResult()
            # The marker did not move: the cut-off attempt never reached the BMC.
            await self.db(lambda session: ledger.forget(session, key))
        marker: str | None = None
        fed: dict[str, str] = {}
        if cycle:
            marker = await retrying(lambda: backend.reset_marker(ref))
            if data.code == AC_POWER_CYCLE:
                fed = await self._fed_markers(ref)
            intent: dict[str, object] = {"code": data.code, "marker": marker}
            if fed:
                intent["fed"] = fed
            await self.db(
                lambda session: ledger.intend(session, key, data.tray_id, "power", intent)
            )
        try:
            await retrying(lambda: backend.power_control(ref, data.code, operation_key=key))
        except (HardwareError, InfrastructureUnavailable):
            # The backend answered, or could not even start (its own store was down):
            # nothing was done, so a retry may send it again. Anything else (crash,
            # cancel, the attempt's deadline) keeps the intent.
            if cycle:
                await self.db(lambda session: ledger.forget(session, key))
            raise
        if marker is not None and not await self._cycled(backend, ref, marker):
            # Accepted, yet the tray did not cycle: the retry may send it again.
            await self.db(lambda session: ledger.forget(session, key))
            raise HardwareError(messages.cycle_not_observed(data.code))
        await self._accepted(key, data.tray_id, "power", {"code": data.code})
        await self._check_fed_cycled(data.code, fed)
        return p.PowerResult()

    async def _fed_markers(self, shelf: TrayRef) -> dict[str, str]:
        """Reset markers of the trays a shelf feeds (its rack's Compute and NVLSwitch
        trays), read before its AC is cut. A tray whose BMC does not answer now (the rack
        is unpowered) or that has no marker cannot show a cycle: left out, and its return
        is what the rule's VerifyPowerStatus checks."""
        fed_types = (ComponentType.COMPUTE.value, ComponentType.NVLSWITCH.value)
        ids = await self.db(
            lambda session: _rack_tray_ids(session, uuid.UUID(shelf.rack_id), fed_types)
        )
        refs = await retrying(lambda: self.registry.tray_refs(ids))
        markers: dict[str, str] = {}
        for tray_id, ref in refs.items():
            try:
                found = await self._marker(ref)
            except HardwareError as exc:
                log.info("AC cycle of %s: %s not observable (%s)", shelf.name, ref.name, exc)
                continue
            if found is not None:
                markers[tray_id] = found
        return markers

    async def _marker(self, ref: TrayRef) -> str | None:
        backend = self.registry.backend_for(ref)
        return await retrying(lambda: backend.reset_marker(ref))

    async def _check_fed_cycled(self, code: str, before: dict[str, str]) -> None:
        """Wait until every tray behind the shelf shows its own cycle (its reset marker
        moved; an unanswered read while its BMC is without power counts as not yet),
        for at most FED_CYCLE_WINDOW. The shelf's command stays done either way: sending
        it again would cut the rack's power a second time."""
        if not before:
            return
        refs = await retrying(lambda: self.registry.tray_refs(before))
        waiting = {tray_id: refs[tray_id] for tray_id in before if tray_id in refs}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FED_CYCLE_WINDOW
        pause = 0.05
        while waiting:
            for tray_id, ref in list(waiting.items()):
                try:
                    now = await self._marker(ref)
                except HardwareError:
                    continue
                if now != before[tray_id]:
                    del waiting[tray_id]
            remaining = deadline - loop.time()
            if not waiting or remaining <= 0:
                break
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, FED_CYCLE_PAUSE_CAP)
        if waiting:
            names = ", ".join(sorted(ref.name or ref.id for ref in waiting.values()))
            raise HardwareError(messages.fed_trays_not_cycled(code, names), retryable=False)

    async def _cycled(self, backend: TrayBackend, ref: TrayRef, before: str) -> bool:
        """Whether the reset marker moved from `before` (a BMC may take a moment)."""
        for pause in CYCLE_CHECK_PAUSES:
            await asyncio.sleep(pause)
            if await retrying(lambda: backend.reset_marker(ref)) != before:
                return True
        return False

    async def firmware_start(self, data: p.FirmwareCommand) -> str:
        done = await self._lookup(data.ledger_key)
        if done is not None and done.accepted:
            return str(done.result["job_id"])
        ref, backend = await self.target(data.tray_id)
        job_id = await retrying(
            lambda: backend.firmware_start(
                ref, data.version, tuple(data.targets), operation_key=data.ledger_key
            )
        )
        result = {"job_id": job_id, "version": data.version, "operation": data.operation}
        await self._accepted(data.ledger_key, data.tray_id, "firmware", result)
        return job_id

    async def firmware_started(self, ledger_key: str) -> bool:
        """Whether a firmware update under this ledger key was already started."""
        return await self.db(lambda session: ledger.recorded(session, ledger_key)) is not None

    async def bring_up_control(self, tray_id: str) -> None:
        ref, backend = await self.target(tray_id)
        await retrying(lambda: backend.bring_up_control(ref))

    async def inject_expectation(self, tray_id: str) -> None:
        ref, backend = await self.target(tray_id)
        await retrying(lambda: backend.inject_expectation(ref))

    # --- reads --------------------------------------------------------------------------

    async def power_status(self, tray_id: str) -> str:
        """The tray's power state, recorded. A read the BMC (or the way to it) answers
        with an error is recorded too, as the tray's failed read; one the BMC does not
        answer before the caller's deadline is recorded by that caller, which alone can
        tell the BMC's silence from an outage of nico's own (`power_unanswered`)."""
        self._power_sent.pop(tray_id, None)  # set again once this read's request is sent
        try:
            ref, backend = await self.target(tray_id)
            sent, state = await _sent_read(
                lambda: backend.power_status(ref),
                lambda at: self._power_sent.__setitem__(tray_id, at),
            )
        except HardwareError as exc:
            await self.observed.power_failed(tray_id, str(exc), self._power_sent.pop(tray_id, None))
            raise
        self._power_sent.pop(tray_id, None)
        await self.record_power(tray_id, state.value, sent)
        return str(state.value)

    async def power_unanswered(self, tray_id: str, limit: float) -> None:
        """The tray's power read sent by `power_status` got no answer within `limit`, a
        deadline its caller found cut the BMC's own time (not a wait for nico's database
        or Temporal): recorded as the tray's failed read, like the state sync's. Nothing
        when no request of that read was sent (it was cut before reaching the BMC)."""
        sent = self._power_sent.pop(tray_id, None)
        if sent is not None:
            await self.observed.power_failed(tray_id, unanswered(limit), sent)

    async def firmware_inventory(self, tray_id: str) -> FirmwareInventory:
        """Every firmware component of the tray and its main version, recorded."""
        ref, backend = await self.target(tray_id)
        sent, inventory = await _sent_read(lambda: backend.firmware_inventory(ref))
        await self.observed.inventory(tray_id, inventory, sent)
        return inventory

    async def firmware_versions(self, tray_ids: list[str]) -> list[str]:
        return [await self._read_version(tray_id) for tray_id in tray_ids]

    async def _read_version(self, tray_id: str) -> str:
        """The tray's main version, read as its whole inventory (it costs a BMC the same
        FirmwareInventory walk): recorded like any inventory read, it moves the tray's
        `observedAt`, clears a stale firmware error and is ordered by when it was sent,
        so an older inventory read recorded later cannot roll the version back."""
        return (await self.firmware_inventory(tray_id)).version

    # --- polls (raise on failure; callers turn that into an Observation) ------------------

    async def observe_power(self, tray_id: str) -> p.Observation:
        return p.Observation(state=await self.power_status(tray_id))

    async def observe_firmware(self, data: p.FirmwareQuery) -> p.Observation:
        ref, backend = await self.target(data.tray_id)
        job = await retrying(lambda: backend.firmware_status(ref, data.job_id))
        version = None
        if job.state.value == "Completed":
            # The whole inventory (what the update left on every component), recorded:
            # the tray's observedAt and compliance move with the update. It costs a BMC
            # what reading the main version alone does (both walk FirmwareInventory).
            version = (await self.firmware_inventory(data.tray_id)).version
        return p.Observation(
            state=job.state.value, percent=job.percent, detail=job.message, version=version
        )

    async def observe_bring_up(self, tray_id: str) -> p.Observation:
        ref, backend = await self.target(tray_id)
        return p.Observation(state=(await retrying(lambda: backend.bring_up_status(ref))).value)

    async def observe_reachability(self, data: p.ReachabilityQuery) -> list[list[p.Observation]]:
        """Per group, one answer per tray: all trays of a need-all group (concurrently);
        for the others, trays one by one until one answers (the rest are `unchecked`).
        Raises InfrastructureUnavailable when the trays could not even be looked up."""
        refs = await self._known_refs([t for g in data.groups for t in g.tray_ids])

        async def one(tray_id: str) -> p.Observation:
            ref = refs.get(tray_id)
            if ref is None:
                return p.Observation(error="tray no longer exists", retryable=False)
            try:
                if await retrying(lambda: self.registry.backend_for(ref).reachable(ref)):
                    return p.Observation(state=p.REACHABLE)
            except Exception as exc:
                return failed_observation(exc)
            return p.Observation(error="BMC unreachable")

        async def group(members: p.ReachGroup) -> list[p.Observation]:
            if members.need_all:
                return list(await asyncio.gather(*(one(t) for t in members.tray_ids)))
            answers: list[p.Observation] = []
            for tray_id in members.tray_ids:
                if any(a.state == p.REACHABLE for a in answers):
                    answers.append(p.Observation(state="unchecked"))
                else:
                    answers.append(await one(tray_id))
            return answers

        return [await group(g) for g in data.groups]


async def _sent_read(
    read: Callable[[], Awaitable[T]], sending: Callable[[datetime], None] | None = None
) -> tuple[datetime, T]:
    """A BMC read (through `retrying`) and the time just before its answered attempt was
    sent: a reading is ordered by when it was asked, so a read sent after a command is
    newer than it, and a slow answer never overtakes a read sent later (docs/state.md).
    `sending` is told that time as each attempt is sent (for a read that then fails)."""
    sent = utcnow()

    async def attempt() -> T:
        nonlocal sent
        sent = utcnow()
        if sending is not None:
            sending(sent)
        return await read()

    return sent, await retrying(attempt)


def outage_answers(
    data: p.ReachabilityQuery, exc: InfrastructureUnavailable
) -> list[list[p.Observation]]:
    """Reachability answers while nico's own services are down: not an answer about any BMC."""
    down = p.Observation(error=str(exc), infra=True)
    return [[down for _ in g.tray_ids] for g in data.groups]


UNEXPECTED_ERROR = "unexpected error in nico (details in the worker log)"


def unanswered(limit: float) -> str:
    """A tray's read error when its BMC did not answer in time (the state sync's words)."""
    return f"BMC did not answer within {format_seconds(limit)}"


def error_text(exc: BaseException) -> str:
    if isinstance(exc, HardwareError | InfrastructureUnavailable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def failed_observation(exc: Exception) -> p.Observation:
    """A poll that could not be read: "not yet", unless the backend says waiting cannot
    help (bad credentials, untrusted TLS, a job or tray that no longer exists)."""
    if isinstance(exc, HardwareError):
        return p.Observation(error=str(exc), retryable=exc.retryable)
    if isinstance(exc, AttemptExpired):
        return p.Observation(error=str(exc))
    if isinstance(exc, InfrastructureUnavailable):
        return p.Observation(error=str(exc), infra=True)
    log.warning("poll failed: %s", error_text(exc))
    return p.Observation(error=UNEXPECTED_ERROR)


async def _rack_tray_ids(
    session: AsyncSession, rack_id: uuid.UUID, types: tuple[str, ...]
) -> list[str]:
    result = await session.execute(
        select(Tray.id).where(Tray.rack_id == rack_id, Tray.type.in_(types)).order_by(Tray.name)
    )
    return [str(tray_id) for tray_id in result.scalars()]
