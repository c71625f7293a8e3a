"""What a step costs Temporal: a constant per step plus a few events per tray, whatever
the rule polls (issue 9 item 1), and polls that notice a change at once (item 2).

Polls run inside the step's `run_step` activity, so the time-skipping server cannot skip
them; the suite's `fast_engine_waits` runs the runner's waits (poll intervals, poll
timeouts) at 1/100 of real time instead, and the simulator's firmware update takes a few
real seconds. So "polling every 1s" below is one poll every 10 ms of real time.
"""

from __future__ import annotations

from typing import Any

from nico.domain import OperationType, TaskStatus
from nico.rules.builtins import builtin_rule
from nico.services import Services
from tests.engine.conftest import Engine
from tests.engine.support import SimRack, act, make_rack, make_task, rule, step

# Task-level events (start, begin, report saves, finish, completion) and per-step ones
# (run_step scheduled/started/completed, stage report saves): generous, and far below a
# poll's cost (a timer and an activity per poll before: ~8 events).
CONSTANT = 60
PER_TRAY = 10


def firmware_rule(poll_interval: str, trays: str = "Compute") -> dict[str, Any]:
    update = act(
        "FirmwareControl",
        "4m",
        operation="upgrade",
        poll_interval=poll_interval,
        poll_timeout="45m",
    )
    return rule(
        step("PowerShelf", 1, act("PowerControl", operation="on")),
        step(trays, 2, update),
    )


async def run_firmware(engine: Engine, rack: SimRack, poll_interval: str) -> tuple[str, int]:
    payload = await make_task(
        engine.services,
        rack,
        firmware_rule(poll_interval),
        operation_type="FirmwareControl",
        operation_code="upgrade",
        info={"version": "2.0.0"},
    )
    task, _ = await engine.run(payload)
    history = await engine.client.get_workflow_handle(payload.task_id).fetch_history()
    return task.status, len(history.events)


def fresh_sim(services: Services, firmware_seconds: float) -> None:
    services.settings.sim_firmware_duration = firmware_seconds  # read on first use


async def test_ten_times_more_polls_cost_no_more_history(engine: Engine) -> None:
    fresh_sim(engine.services, 1.0)
    counts = {}
    for interval in ("10s", "1s"):  # 10 and 100 polls a tray
        rack = await make_rack(engine.services, compute=6, switches=0, shelves=1)
        status, events = await run_firmware(engine, rack, interval)
        assert status == TaskStatus.SUCCEEDED.value
        counts[interval] = events
    trays = 7
    for events in counts.values():
        assert events <= PER_TRAY * trays + CONSTANT, counts
    # Live-count signals vary with timing (at most one per tray), polls add nothing.
    assert counts["1s"] <= counts["10s"] + trays, counts


async def test_a_long_firmware_update_polled_every_second_completes(engine: Engine) -> None:
    # 18 trays, one poll a (scaled) second for a 5 s update: ~9,000 polls. Cut as before
    # (a timer and an activity per poll) that is over 70,000 events, past Temporal's
    # 51,200-event limit where it terminates the workflow.
    fresh_sim(engine.services, 5.0)
    rack = await make_rack(engine.services, compute=18, switches=0, shelves=1)
    status, events = await run_firmware(engine, rack, "1s")
    assert status == TaskStatus.SUCCEEDED.value
    assert events <= PER_TRAY * 19 + CONSTANT


async def test_a_change_is_seen_long_before_the_poll_interval(
    engine: Engine, real_engine_waits: None
) -> None:
    # Polled once an hour by the rule, the 0.5 s update is still seen at once: the first
    # checks come after 50 ms and back off toward the interval (a test that waited for
    # the interval would not finish).
    fresh_sim(engine.services, 0.5)
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=1)
    status, _ = await run_firmware(engine, rack, "1h")
    assert status == TaskStatus.SUCCEEDED.value


async def test_the_final_status_write_follows_the_last_step_without_a_live_save(
    engine: Engine,
) -> None:
    """Between a stage's last step and what follows (the next stage, the final status
    write) no live report save is scheduled: the final write carries the report, and a
    save there only delayed the task's end (issue 9, latency)."""
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1)
    power = builtin_rule(OperationType.POWER_CONTROL, "power_on").definition_wire
    payload = await make_task(engine.services, rack, power)
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    history = await engine.client.get_workflow_handle(payload.task_id).fetch_history()
    names: dict[int, str] = {}
    order: list[str] = []  # activities in the order they were scheduled or completed
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
            order.append(f"schedule {names[event.event_id]}")
        if event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes.scheduled_event_id
            order.append(f"complete {names[done]}")
    last_step = max(i for i, what in enumerate(order) if what == "complete run_step")
    assert "schedule save_report" not in order[last_step:], order
    assert order[-2:] == ["schedule finish_task", "complete finish_task"], order
