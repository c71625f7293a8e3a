"""The state sync: every tray of every Flow-enabled site is read once per
`NICO_STATE_SYNC_INTERVAL` (power state and firmware inventory), so what nico shows
stays true when someone presses a button or a BMC drops between tasks.

- Reads only: power status and firmware inventory through the tray's backend; never a
  command.
- Spread: the trays are cut into small batches started evenly over the interval (one
  batch about every second), not one burst per interval.
- Polite to BMCs: every Redfish request already waits for the per-BMC cap
  (`NICO_BMC_CONCURRENCY`, shared with running tasks); on top of that the sync reads at
  most one tray per BMC at a time, so tasks keep the other slots, and at most
  `CONCURRENCY` trays overall.
- One worker at a time: the worker holding the `state-sync` lease (`worker_leases`)
  reads; other workers stand by and take over once it stops renewing.
- Truthful: a tray that cannot be read is recorded with the error (it shows `Unknown`
  with the age of its last good value, `nico.store.observations`); an error of nico's own
  database is no tray's error: it is logged once per outage and the batch is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import select

from nico.domain import OPERABLE_COMPONENT_TYPES
from nico.engine.hardware_ops import unanswered
from nico.engine.infra import classify
from nico.hardware.interface import Capability, HardwareError, TrayBackend, TrayRef
from nico.metrics import STATE_SYNC_PASS_SECONDS, STATE_SYNC_READS
from nico.rules.durations import format_seconds
from nico.services import Services
from nico.store import observations
from nico.store.history import SYNC
from nico.store.leases import claim_lease, release_lease
from nico.store.models import Site, Tray, utcnow

log = logging.getLogger(__name__)

# Trays per batch at most; a batch's reads are recorded in one transaction.
BATCH_MAX = 50
# Batches started per second of interval, about: small sites read one tray at a time.
BATCHES_PER_SECOND = 1.0
# Tray reads in flight at once, all BMCs together.
CONCURRENCY = 16
# A tray whose reads take longer than this is recorded as not answering.
READ_TIMEOUT = 120.0
UNEXPECTED_ERROR = "unexpected error in nico (details in the worker log)"
_READ_LABELS = (("power", "ok"), ("power", "failed"), ("firmware", "ok"), ("firmware", "failed"))
# The lease naming the one worker that runs the sync, and its slack past two intervals.
LEASE = "state-sync"
LEASE_GRACE = 60.0
# Set by a batch (batches run concurrently): whether its reads met nico's own outage.
_OUTAGE: ContextVar[list[bool]] = ContextVar("state_sync_outage")


@dataclass(frozen=True)
class PassResult:
    """What one pass did (for tests and the log)."""

    trays: int
    power_read: int
    power_failed: int
    firmware_read: int
    firmware_failed: int
    skipped_infra: int


class _InfraDown(Exception):
    """nico's own database did not answer; not the tray's fault."""


async def sync_targets(services: Services) -> list[uuid.UUID]:
    """Operable trays of every Flow-enabled site, rack by rack."""
    operable = [t.value for t in OPERABLE_COMPONENT_TYPES]
    async with services.db.session() as session:
        rows = await session.execute(
            select(Tray.id)
            .join(Site, Site.id == Tray.site_id)
            .where(Site.flow_enabled.is_(True), Tray.type.in_(operable))
            .order_by(Tray.rack_id, Tray.slot_id, Tray.tray_idx, Tray.id)
        )
        return list(rows.scalars())


def batch_size(trays: int, interval: float) -> int:
    """Trays per batch so batches start about every second over the interval."""
    if trays <= 0:
        return 1
    batches = max(1.0, interval * BATCHES_PER_SECOND)
    return max(1, min(BATCH_MAX, math.ceil(trays / batches)))


def _bmc_key(ref: TrayRef) -> str:
    if ref.bmc is not None and ref.bmc.address:
        return f"{ref.bmc.address}:{ref.bmc.port or ''}"
    return f"tray:{ref.id}"


class StateSync:
    """The worker's sync loop (`run`) and one pass over every tray (`run_pass`)."""

    def __init__(self, services: Services, *, interval: float | None = None) -> None:
        self._services = services
        self._interval = (
            services.settings.state_sync_interval if interval is None else max(interval, 0.0)
        )
        self._gate: asyncio.Semaphore | None = None
        self._bmcs: dict[str, asyncio.Lock] = {}
        self._infra_down = False
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[-128:]
        self._leading = False
        self._claimed_at = 0.0

    @property
    def interval(self) -> float:
        return self._interval

    async def run(self) -> None:
        """Pass after pass until cancelled; each pass takes about one interval. Only the
        worker holding the `state-sync` lease reads (N workers do not read every BMC N
        times); the others check each interval and take over when it lapses."""
        if self._interval <= 0:
            return
        loop = asyncio.get_running_loop()
        log.info("state sync every %s", format_seconds(self._interval))
        try:
            while True:
                started = loop.time()
                try:
                    result = await self.sync_once()
                    log.debug("state sync pass: %s", result)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._failed(exc)
                await asyncio.sleep(max(0.0, started + self._interval - loop.time()))
        finally:
            await self._release()

    async def sync_once(self, *, spread: float | None = None) -> PassResult | None:
        """One pass if this worker holds the lease (None when another one does)."""
        if not await self.lead():
            return None
        started = time.monotonic()
        result = await self.run_pass(spread=spread, renew=True)
        STATE_SYNC_PASS_SECONDS.observe(time.monotonic() - started)
        return result

    async def lead(self) -> bool:
        """Take or renew the lease; logs when the reading worker changes."""
        async with self._services.db.session() as session:
            await observations.begin_recording(session)
            held = await claim_lease(session, LEASE, self._holder, self._lease_ttl())
        if held:
            self._claimed_at = asyncio.get_running_loop().time()
        if held != self._leading:
            self._leading = held
            if held:
                log.info("state sync: this worker (%s) reads the trays", self._holder)
            else:
                log.info("state sync: another worker reads the trays; this one stands by")
        return held

    def _lease_ttl(self) -> float:
        # Renewed at least every half interval while a pass runs: a live holder never
        # lapses; a dead one is replaced within about two intervals.
        return 2 * max(self._interval, 1.0) + LEASE_GRACE

    async def _release(self) -> None:
        if not self._leading:
            return
        self._leading = False
        try:
            async with asyncio.timeout(5):
                async with self._services.db.session() as session:
                    await release_lease(session, LEASE, self._holder)
        except Exception as exc:  # best effort: the lease lapses by itself
            log.info("state sync lease not released (%s); it lapses by itself", exc)

    async def run_pass(self, *, spread: float | None = None, renew: bool = False) -> PassResult:
        """Read every tray once, batches started evenly over `spread` seconds (default:
        the interval; 0 = back to back). Each batch runs as its own task, started on
        schedule whatever earlier batches are doing (a slow BMC holds back only its own
        batch; `CONCURRENCY` and the per-BMC locks bound the load) and recorded when it
        finishes; the pass ends when all have. With `renew` the lease is renewed on its own
        timer, and the pass stops if another worker took it over."""
        spread = self._interval if spread is None else spread
        trays = await sync_targets(self._services)
        self._bmcs.clear()  # no read is in flight between passes: drop gone BMCs' locks
        size = batch_size(len(trays), spread)
        batches = [trays[i : i + size] for i in range(0, len(trays), size)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        slot = spread / len(batches) if batches else 0.0
        totals = [0, 0, 0, 0, 0]
        running: set[asyncio.Task[None]] = set()
        lost = asyncio.Event()

        async def one(batch: Sequence[uuid.UUID]) -> None:
            try:
                counts = await self._sync_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
                totals[4] += len(batch)
                return
            for i, n in enumerate(counts):
                totals[i] += n

        renewing = asyncio.create_task(self._renew(lost, running)) if renew else None
        try:
            for k, batch in enumerate(batches):
                delay = start + k * slot - loop.time()
                if delay > 0 and not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), delay)
                if lost.is_set():
                    break  # another worker took over (this one stalled past the lease)
                task = asyncio.create_task(one(batch))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.gather(*running, return_exceptions=True)
        finally:
            left = [*running, *([renewing] if renewing else [])]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        return PassResult(len(trays), totals[0], totals[1], totals[2], totals[3], totals[4])

    async def _renew(self, lost: asyncio.Event, running: set[asyncio.Task[None]]) -> None:
        """Renew the lease every half interval while the pass runs, however long its
        batches take; when another worker holds it, stop this pass's reads."""
        loop = asyncio.get_running_loop()
        period = max(self._interval, 1.0) / 2
        while True:
            await asyncio.sleep(max(0.0, self._claimed_at + period - loop.time()))
            try:
                held = await self.lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the lease outlives a short outage: try again soon
                self._failed(exc)
                await asyncio.sleep(min(period, 5.0))
                continue
            if not held:
                lost.set()
                for task in list(running):
                    task.cancel()
                return

    async def _sync_batch(self, tray_ids: Sequence[uuid.UUID]) -> tuple[int, int, int, int]:
        outage = [False]  # this batch's reads met nico's own outage (set by _error_text)
        _OUTAGE.set(outage)
        refs, broken = await self._refs(tray_ids)
        results = [*await asyncio.gather(*(self._read(ref) for ref in refs)), *broken]
        power = [p for p, _ in results if p is not None]
        firmware = [f for _, f in results if f is not None]
        async with self._services.db.session() as session:
            await observations.begin_recording(session)
            await observations.record_power(session, power, SYNC)
            await observations.record_firmware(session, firmware, SYNC)
        if not outage[0]:
            self._recovered()
        counts = (
            sum(r.error is None for r in power),
            sum(r.error is not None for r in power),
            sum(r.error is None for r in firmware),
            sum(r.error is not None for r in firmware),
        )
        for (kind, result), n in zip(_READ_LABELS, counts, strict=True):
            if n:
                STATE_SYNC_READS.labels(kind, result).inc(n)
        return counts

    async def _refs(
        self, tray_ids: Sequence[uuid.UUID]
    ) -> tuple[list[TrayRef], list[tuple[observations.PowerReading, observations.FirmwareReading]]]:
        """The batch's tray references; a tray whose reference cannot be built (say its
        BMC password no longer decrypts) is recorded with that error."""
        registry = self._services.backends
        try:
            return list((await registry.tray_refs(tray_ids)).values()), []
        except HardwareError:
            pass
        refs: list[TrayRef] = []
        broken = []
        for tray_id in tray_ids:
            try:
                refs.extend((await registry.tray_refs([tray_id])).values())
            except HardwareError as exc:
                now = utcnow()
                broken.append(
                    (
                        observations.PowerReading(tray_id, now, error=str(exc)),
                        observations.FirmwareReading(tray_id, now, error=str(exc)),
                    )
                )
        return refs, broken

    async def _read(
        self, ref: TrayRef
    ) -> tuple[observations.PowerReading | None, observations.FirmwareReading | None]:
        """One tray's power and firmware reads (None for a kind not read or skipped
        because nico's own database did not answer)."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(CONCURRENCY)
        lock = self._bmcs.setdefault(_bmc_key(ref), asyncio.Lock())
        tray_id = uuid.UUID(ref.id)
        async with lock, self._gate:  # a busy BMC's trays do not hold slots of others
            try:
                backend = self._services.backends.backend_for(ref)
                capabilities = backend.capabilities(ref.type)
            except Exception as exc:
                error = self._error_text(exc, ref)
                if error is None:
                    return None, None
                now = utcnow()
                return (
                    observations.PowerReading(tray_id, now, error=error),
                    observations.FirmwareReading(tray_id, now, error=error),
                )
            power = firmware = None
            unreachable = False
            if Capability.POWER_STATUS in capabilities:
                power, unreachable = await self._read_power(backend, ref, tray_id)
            if Capability.FIRMWARE_VERSION in capabilities:
                if unreachable and power is not None:
                    # The BMC just did not answer: do not wait out a second read; the
                    # firmware read fails with the same error.
                    firmware = observations.FirmwareReading(tray_id, power.at, error=power.error)
                else:
                    firmware = await self._read_firmware(backend, ref, tray_id)
            return power, firmware

    async def _read_power(
        self, backend: TrayBackend, ref: TrayRef, tray_id: uuid.UUID
    ) -> tuple[observations.PowerReading | None, bool]:
        """The power reading, and whether the BMC did not answer at all."""
        sent = utcnow()  # a reading is ordered by when it was asked (docs/state.md)
        try:
            state = await asyncio.wait_for(backend.power_status(ref), READ_TIMEOUT)
        except Exception as exc:
            unreachable = isinstance(exc, TimeoutError) or (
                isinstance(exc, HardwareError) and exc.unreachable
            )
            error = self._error_text(exc, ref)
            if error is None:
                return None, False
            return observations.PowerReading(tray_id, sent, error=error), unreachable
        return observations.PowerReading(tray_id, sent, state=state.value), False

    async def _read_firmware(
        self, backend: TrayBackend, ref: TrayRef, tray_id: uuid.UUID
    ) -> observations.FirmwareReading | None:
        sent = utcnow()
        try:
            inventory = await asyncio.wait_for(backend.firmware_inventory(ref), READ_TIMEOUT)
        except Exception as exc:
            error = self._error_text(exc, ref)
            if error is None:
                return None
            return observations.FirmwareReading(tray_id, sent, error=error)
        return observations.FirmwareReading(
            tray_id, sent, components=inventory.components, version=inventory.version
        )

    def _error_text(self, exc: Exception, ref: TrayRef) -> str | None:
        """What to record for a failed read, or None when it was nico's own outage."""
        if isinstance(exc, HardwareError):
            return str(exc)
        if isinstance(exc, TimeoutError):
            return unanswered(READ_TIMEOUT)
        if classify(exc) is not None:
            seen = _OUTAGE.get(None)
            if seen is not None:
                seen[0] = True
            self._failed(exc)
            return None
        log.warning("state sync read of tray %s failed: %s: %s", ref.id, type(exc).__name__, exc)
        return UNEXPECTED_ERROR

    def _failed(self, exc: BaseException) -> None:
        """Log an infrastructure failure once per outage (anything else every time)."""
        kind = classify(exc)
        if kind is None:
            log.warning("state sync: %s: %s", type(exc).__name__, str(exc).split("\n", 1)[0])
            return
        if not self._infra_down:
            self._infra_down = True
            log.warning(
                "state sync paused: %s unavailable (%s); trays keep their last reads",
                kind,
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self._infra_down:
            self._infra_down = False
            log.warning("state sync resumed: the database answers again")
