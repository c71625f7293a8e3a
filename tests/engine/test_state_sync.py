"""The state sync over the simulator: it sees changes made behind nico's back, shows an
unreadable tray as Unknown with the error, writes history for observed changes, sends no
command, and does not blame trays for nico's own database outage."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from nico.domain import FirmwareComponent, PowerState
from nico.engine.hardware_ops import HardwareOps
from nico.engine.state_sync import StateSync, batch_size, sync_targets
from nico.hardware.interface import TrayRef
from nico.hardware.simulator import SimulatorBackend
from nico.services import Services
from nico.store import observations
from nico.store import simulator as sim_store
from nico.store.db import Database
from nico.store.history import SYNC, HistoryQuery, list_history
from nico.store.models import Bmc, SimFault, SimTrayState, Tray, WorkerLease, utcnow
from tests.support.inventory import MadeRack, make_site_with_rack

DOWN_URL = "postgresql+asyncpg://nico@127.0.0.1:1/nowhere"  # nothing listens there


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    """A Flow site's NVL72 rack whose simulated trays are all powered on."""
    made = await make_site_with_rack(services)
    await set_power(services, made.tray_ids, on=True)
    return made


async def set_power(services: Services, tray_ids: list[uuid.UUID], *, on: bool) -> None:
    """Press the power button on the simulated hardware, behind nico's back."""
    async with services.db.session() as session:
        trays = list((await session.execute(select(Tray).where(Tray.id.in_(tray_ids)))).scalars())
        await sim_store.ensure_states(session, trays)
        await session.execute(
            update(SimTrayState).where(SimTrayState.tray_id.in_(tray_ids)).values(power_on=on)
        )


async def tray_row(services: Services, tray_id: uuid.UUID) -> Tray:
    async with services.db.session() as session:
        tray = await session.get(Tray, tray_id)
        assert tray is not None
        return tray


async def observed(services: Services, tray_id: uuid.UUID) -> observations.TrayObserved:
    async with services.db.session() as session:
        return (await observations.observations_of(session, [tray_id]))[tray_id]


async def power_commands(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.sum(SimTrayState.power_ops))) or 0)


@pytest.fixture
async def running_sync(services: Services) -> AsyncIterator[StateSync]:
    """The sync loop as the worker runs it, with a 1 s interval."""
    sync = StateSync(services, interval=1.0)
    task = asyncio.create_task(sync.run())
    yield sync
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def reads_counted(kind: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "nico_state_sync_reads_total", {"kind": kind, "result": result}
    )
    return value or 0.0


async def test_a_pass_records_every_tray_and_sends_nothing(
    services: Services, rack: MadeRack
) -> None:
    counted = reads_counted("power", "ok"), reads_counted("firmware", "ok")
    result = await StateSync(services, interval=60).run_pass(spread=0)
    # /metrics counts them (nico_state_sync_reads_total{kind,result})
    assert reads_counted("power", "ok") - counted[0] == 35
    assert reads_counted("firmware", "ok") - counted[1] == 35
    assert result.trays == len(rack.tray_ids) == 35
    assert (result.power_read, result.power_failed) == (35, 0)
    assert (result.firmware_read, result.firmware_failed) == (35, 0)
    compute = rack.trays["Compute"][0]
    assert (await tray_row(services, compute)).power_state == "On"
    seen = await observed(services, compute)
    assert seen.power_state == "On" and seen.power_error is None
    assert seen.power_observed_at is not None
    assert utcnow() - seen.power_observed_at < timedelta(seconds=30)
    assert seen.firmware_inventory is not None
    assert [c.name for c in seen.firmware_inventory] == ["BMC", "BIOS", "DPU"]
    assert await power_commands(services) == 0  # reads only


async def test_a_power_change_behind_nicos_back_shows_within_one_interval(
    services: Services, rack: MadeRack, running_sync: StateSync
) -> None:
    compute = rack.trays["Compute"][3]
    await wait_for(services, compute, "On")
    pressed = utcnow()
    await set_power(services, [compute], on=False)
    await wait_for(services, compute, "Off", within=running_sync.interval + 5.0)
    seen = await observed(services, compute)
    assert seen.power_observed_at is not None and seen.power_observed_at >= pressed
    async with services.db.session() as session:
        rows, total = await list_history(session, HistoryQuery(tray_id=compute), offset=0, limit=10)
    assert total == 1
    assert (rows[0].kind, rows[0].from_value, rows[0].to_value) == ("power", "On", "Off")
    assert (rows[0].source, rows[0].task_id) == ("sync", None)
    assert await power_commands(services) == 0


async def wait_for(
    services: Services, tray_id: uuid.UUID, state: str, within: float = 10.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (await tray_row(services, tray_id)).power_state != state:
        assert loop.time() < deadline, f"tray never showed {state}"
        await asyncio.sleep(0.1)


async def test_an_unreachable_tray_reads_unknown_with_the_error_not_its_last_value(
    services: Services, rack: MadeRack
) -> None:
    sync = StateSync(services, interval=60)
    await sync.run_pass(spread=0)
    compute = rack.trays["Compute"][0]
    good = await observed(services, compute)
    async with services.db.session() as session:
        await sim_store.add_faults(
            session,
            [
                SimFault(
                    site_id=rack.site_id, rack_id=rack.rack_id, tray_id=compute, kind="unreachable"
                )
            ],
        )
    result = await sync.run_pass(spread=0)
    assert (result.power_failed, result.firmware_failed) == (1, 1)
    assert (await tray_row(services, compute)).power_state == "Unknown"
    seen = await observed(services, compute)
    assert seen.power_error == "BMC unreachable (injected fault)"
    # The last good value and its time stay, so its age can be shown.
    assert (seen.power_state, seen.power_observed_at) == ("On", good.power_observed_at)
    assert seen.firmware_error == "BMC unreachable (injected fault)"
    # Its neighbours are unaffected; no history row for an unreadable tray.
    assert (await tray_row(services, rack.trays["Compute"][1])).power_state == "On"
    async with services.db.session() as session:
        _, total = await list_history(session, HistoryQuery(tray_id=compute), offset=0, limit=5)
    assert total == 0


async def test_nicos_own_database_outage_is_no_tray_error(
    services: Services, rack: MadeRack, caplog: pytest.LogCaptureFixture
) -> None:
    """The simulator reads its state from a database that does not answer: the trays
    keep their last reads (no error, no Unknown) and the outage is logged once."""
    sync = StateSync(services, interval=60)
    await sync.run_pass(spread=0)
    down = Database(DOWN_URL)
    # Every connect refused at once (a pool would make callers queue for its slots).
    down.engine = create_async_engine(DOWN_URL, poolclass=NullPool)
    down.sessions = async_sessionmaker(down.engine, expire_on_commit=False)
    services.backends._backends["simulator"] = SimulatorBackend(services.settings, down)
    try:
        with caplog.at_level(logging.WARNING, logger="nico.engine.state_sync"):
            first = await sync.run_pass(spread=0)
            await sync.run_pass(spread=0)
    finally:
        await down.dispose()
    assert (first.power_read, first.power_failed, first.firmware_failed) == (0, 0, 0)
    compute = rack.trays["Compute"][0]
    assert (await tray_row(services, compute)).power_state == "On"
    assert (await observed(services, compute)).power_error is None
    paused = [r for r in caplog.records if "state sync paused" in r.getMessage()]
    assert len(paused) == 1, [r.getMessage() for r in caplog.records]


async def test_a_flow_disabled_site_is_not_read(services: Services) -> None:
    made = await make_site_with_rack(services, flow=False)
    result = await StateSync(services, interval=60).run_pass(spread=0)
    assert result.trays == 0
    async with services.db.session() as session:
        assert await observations.observations_of(session, made.tray_ids) == {}


def test_batches_spread_a_pass_over_the_interval() -> None:
    assert batch_size(35, 300) == 1  # a small site: one tray about every 8 s
    assert batch_size(3500, 300) == 12  # 100 racks: a dozen trays a second
    assert batch_size(100_000, 300) == 50  # capped; the pass then takes longer
    assert batch_size(35, 1) == 35 and batch_size(0, 300) == 1


async def test_one_worker_at_a_time_reads_and_another_takes_over(
    services: Services, rack: MadeRack
) -> None:
    """Two workers' syncs on one database: only the lease holder reads; when it stops
    (released on shutdown, or lapsed after a crash) the other takes over."""
    first, second = StateSync(services, interval=60), StateSync(services, interval=60)
    assert await first.sync_once(spread=0) is not None
    assert await second.sync_once(spread=0) is None  # stands by: no second read of every BMC
    assert await first.lead()  # the holder renews

    await first._release()  # a clean shutdown gives the lease up
    assert (await second.sync_once(spread=0)) is not None
    assert not await first.lead()

    # A crashed holder never releases: its lease lapses and the other takes over.
    async with services.db.session() as session:
        await session.execute(
            update(WorkerLease).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await first.lead()
    assert not await second.lead()


async def test_the_worker_loop_releases_its_lease_when_it_stops(
    services: Services, rack: MadeRack
) -> None:
    loop_sync = StateSync(services, interval=30)
    task = asyncio.create_task(loop_sync.run())
    for _ in range(200):  # the loop claims the lease first thing
        if loop_sync._leading:
            break
        await asyncio.sleep(0.05)
    assert loop_sync._leading
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await StateSync(services, interval=30).lead()  # free at once, no lapse wait


async def test_a_tray_whose_bmc_secret_cannot_be_read_is_reported_alone(
    services: Services,
) -> None:
    """A BMC password that no longer decrypts (the key changed) fails that tray's read
    with the reason; the other trays of its batch are read as usual."""
    made = await make_site_with_rack(services, password="Pw-sync-secret-1")
    await set_power(services, made.tray_ids, on=True)
    broken = made.trays["Compute"][0]
    async with services.db.session() as session:
        await session.execute(
            update(Bmc).where(Bmc.tray_id == broken).values(password_encrypted="not-a-token")
        )
    result = await StateSync(services, interval=1).run_pass(spread=0)  # one batch
    assert (result.power_read, result.power_failed) == (34, 1)
    seen = await observed(services, broken)
    assert seen.power_error and "Pw-sync-secret-1" not in seen.power_error
    assert (await tray_row(services, broken)).power_state == "Unknown"
    assert (await tray_row(services, made.trays["Compute"][1])).power_state == "On"


class _HeldAnswer(SimulatorBackend):
    """A simulated BMC whose answer to one tray's power read travels slowly: it reads
    the state at once, then the answer reaches nico only when `release` is set."""

    def __init__(self, real: SimulatorBackend, tray_id: uuid.UUID) -> None:
        self.__dict__.update(real.__dict__)
        self.tray_id = str(tray_id)
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def power_status(self, tray: TrayRef) -> PowerState:
        state = await super().power_status(tray)
        if tray.id == self.tray_id and not self.read.is_set():  # the first read only
            self.read.set()
            await self.release.wait()
        return state


async def test_a_slow_sync_answer_never_undoes_a_newer_task_read(
    services: Services, rack: MadeRack
) -> None:
    """The sync asks a tray's BMC (On) and the answer comes late; meanwhile a task turns
    the tray off and reads Off. The late answer was asked first: the tray stays Off and
    its history has no made-up Off -> On."""
    compute = rack.trays["Compute"][0]
    sync = StateSync(services, interval=60)
    await sync.run_pass(spread=0)  # baseline: On
    real = services.backends._backends["simulator"]
    assert isinstance(real, SimulatorBackend)
    held = _HeldAnswer(real, compute)
    services.backends._backends["simulator"] = held
    try:
        passing = asyncio.create_task(sync.run_pass(spread=0))
        await asyncio.wait_for(held.read.wait(), 30)  # the BMC said On; not here yet
        await set_power(services, [compute], on=False)  # the task's ForceOff
        ops = HardwareOps(services).for_step()
        assert await ops.power_status(str(compute)) == "Off"  # the task's poll
        await ops.observed.close()
        held.release.set()  # the sync's answer arrives, after the task's read
        await passing
    finally:
        services.backends._backends["simulator"] = real
    assert (await tray_row(services, compute)).power_state == "Off"
    assert (await observed(services, compute)).power_state == "Off"
    async with services.db.session() as session:
        rows, _ = await list_history(session, HistoryQuery(tray_id=compute), offset=0, limit=10)
    assert [(r.from_value, r.to_value) for r in rows] == [("On", "Off")]


async def test_slow_bmcs_hold_back_only_their_own_batch(services: Services, rack: MadeRack) -> None:
    """Two trays answer each read 3 s late: the other batches still start on schedule
    and are recorded within the spread, and the pass takes about the slowest tray, not
    the slow trays one after another."""
    targets = await sync_targets(services)  # in the order the pass reads them
    slow = [targets[0], targets[10]]  # in the first and second batch (10 trays a batch)
    async with services.db.session() as session:
        await sim_store.add_faults(
            session,
            [
                SimFault(
                    site_id=rack.site_id,
                    rack_id=rack.rack_id,
                    tray_id=tray,
                    kind="slow",
                    slow_seconds=3.0,
                )
                for tray in slow
            ],
        )
    loop = asyncio.get_running_loop()
    started = loop.time()
    passing = asyncio.create_task(StateSync(services, interval=60).run_pass(spread=3.5))
    await asyncio.sleep(4.5)  # the spread and a second: the slow trays are still reading
    healthy = targets[20:]  # the last two batches
    async with services.db.session() as session:
        seen = await observations.observations_of(session, healthy)
    assert not passing.done()
    assert len(seen) == len(healthy)
    result = await passing
    assert loop.time() - started < 10.0  # one slow tray's reads (6 s), not two in a row
    assert (result.power_read, result.firmware_read) == (35, 35)
    for tray in slow:
        assert (await observed(services, tray)).power_state == "On"


async def test_an_unreachable_bmc_is_asked_once_per_pass(
    services: Services, rack: MadeRack
) -> None:
    """A BMC that does not answer its power read is not asked for its firmware too (a
    dead Redfish BMC would cost a second timeout); both read as failed with its error."""
    compute = rack.trays["Compute"][0]
    async with services.db.session() as session:
        await sim_store.add_faults(
            session,
            [
                SimFault(
                    site_id=rack.site_id, rack_id=rack.rack_id, tray_id=compute, kind="unreachable"
                ),
                SimFault(
                    site_id=rack.site_id,
                    rack_id=rack.rack_id,
                    tray_id=compute,
                    kind="slow",
                    slow_seconds=3.0,
                ),
            ],
        )
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await StateSync(services, interval=60).run_pass(spread=0)
    assert loop.time() - started < 5.0  # one slow read (3 s), not two
    assert (result.power_failed, result.firmware_failed) == (1, 1)
    seen = await observed(services, compute)
    assert seen.firmware_error == seen.power_error == "BMC unreachable (injected fault)"


async def test_the_lease_is_renewed_while_a_long_batch_reads(
    services: Services, rack: MadeRack
) -> None:
    """A batch slower than half the interval does not hold back the lease's renewal (a
    pass outliving its lease would let a second worker read at the same time)."""
    async with services.db.session() as session:
        await sim_store.add_faults(
            session,
            [
                SimFault(
                    site_id=rack.site_id,
                    rack_id=rack.rack_id,
                    tray_id=rack.trays["Compute"][0],
                    kind="slow",
                    slow_seconds=1.5,
                )
            ],
        )
    sync = StateSync(services, interval=2)
    assert await sync.lead()

    async def expires() -> object:
        async with services.db.session() as session:
            return await session.scalar(select(WorkerLease.expires_at))

    claimed = await expires()
    await sync.run_pass(spread=0, renew=True)  # one batch of 3 s; renewed after 1 s
    assert await expires() > claimed  # type: ignore[operator]


async def test_a_task_version_read_is_ordered_and_clears_a_stale_firmware_error(
    services: Services, rack: MadeRack
) -> None:
    """A verify step's version read (firmware_versions) is recorded like an inventory
    read: it clears the error of an earlier failed read, and a slow sync inventory read
    asked before it but recorded after it does not roll the version back."""
    compute = rack.trays["Compute"][0]
    sync = StateSync(services, interval=60)
    await sync.run_pass(spread=0)
    version = (await tray_row(services, compute)).firmware_version
    asked = utcnow()  # a sync inventory read sent now, answering late with an old version
    async with services.db.session() as session:
        await observations.record_firmware(
            session,
            [observations.FirmwareReading(compute, asked, error="BMC unreachable")],
            SYNC,
        )
    ops = HardwareOps(services).for_step()
    assert await ops.firmware_versions([str(compute)]) == [version]
    await ops.observed.close()
    seen = await observed(services, compute)
    assert seen.firmware_error is None
    assert seen.firmware_observed_at is not None and seen.firmware_observed_at > asked
    old = (FirmwareComponent("BMC", "0.0.1"), FirmwareComponent("BIOS", "0.0.1"))
    async with services.db.session() as session:
        await observations.record_firmware(
            session,
            [observations.FirmwareReading(compute, asked, components=old, version="0.0.1")],
            SYNC,
        )
    assert (await tray_row(services, compute)).firmware_version == version
