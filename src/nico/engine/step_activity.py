"""The `run_step` activity: one rule step in one heartbeating activity (`StepRunner`).

- Heartbeats every second with the runner's progress as details; an attempt retried after
  a worker crash (heartbeat timeout) starts from those details, so finished trays are
  not run again and a tray in flight resumes at its next action (the ledger keeps its
  main action from being sent twice).
- Sends the task workflow the step's cumulative counts (`step_progress` signal) when they
  change, at most one signal in flight and one per PROGRESS_EVERY, so the live report
  moves while the step runs and history grows with trays, not with polls.
- A cancel (task cancel, a sibling step failed) reaches it with the next heartbeat; it
  stops every tray before answering with a StepResult (`cancelled`, or `completed` when
  every tray had already finished); it never raises for the step's own outcome. A cancel
  that is not the workflow's (the worker shutting down) stops the trays the same way and
  then fails the attempt, so the step runs on elsewhere, resumed from its heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from temporalio import activity

from nico.engine import infra, messages, step_history
from nico.engine import payloads as p
from nico.engine.hardware_ops import HardwareOps
from nico.engine.policy import HEARTBEAT_EVERY, STEP_MARGIN
from nico.engine.step_runner import StepRunner

log = logging.getLogger(__name__)

# Live counts reach the task workflow at most this often per step.
PROGRESS_EVERY = 0.5


def _resume_details() -> dict[str, Any] | None:
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], dict):
        return details[0]
    return None


def _cancel_requested() -> bool:
    """Whether the workflow asked this step to stop (task cancel, a sibling failed)."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


def _deadline(limit: float) -> float:
    """Wall-clock end of the step on this worker: `limit` less what earlier attempts used
    (both times are the server's, so a skewed or time-skipping clock does not matter)."""
    info = activity.info()
    used = (info.current_attempt_scheduled_time - info.scheduled_time).total_seconds()
    return time.time() + max(limit - max(used, 0.0), 0.0)


def _outage_room(budget: float) -> float:
    """How long outage time may extend the step: what the workflow gave the activity
    beyond the step's budget and margin (`outage-allowance`; nothing for tasks started
    before it, so the step ends by its own deadline, not Temporal's timeout)."""
    total = activity.info().schedule_to_close_timeout
    if total is None:
        return 0.0
    return max(total.total_seconds() - STEP_MARGIN - budget, 0.0)


async def run_step(ops: HardwareOps, data: p.StepRunInput) -> p.StepResult:
    step_ops = ops.for_step(data.step.task_id)
    try:
        runner = StepRunner(
            step_ops,
            data.step,
            deadline=_deadline(data.limit),
            budget=data.budget,
            resume=_resume_details(),
            outage_room=_outage_room(data.budget),
        )
    except Exception as exc:  # a step the engine cannot read fails, it is not retried
        log.exception("step %s/%s cannot run", data.step.stage, data.step.position)
        return p.StepResult("failed", len(data.step.trays), 0, 0, 0, messages.internal_error(exc))
    step = data.step

    async def heartbeat() -> None:
        while True:
            activity.heartbeat(runner.progress())
            await asyncio.sleep(HEARTBEAT_EVERY)

    async def report(sent: tuple[int, int]) -> None:
        try:
            handle = activity.client().get_workflow_handle(step.task_id)
        except RuntimeError:  # no client (activity test environment): nothing to tell
            return
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            counts = runner.counts()
            if counts == sent:
                continue
            try:
                await handle.signal(
                    p.STEP_PROGRESS_SIGNAL,
                    p.StepProgress(step.stage, step.position, counts[0], counts[1]),
                )
                sent = counts
            except Exception as exc:  # best effort: the result carries the final counts
                log.warning("step progress not sent: %s", exc)

    history = runner.history()
    fed = step_history.fed_trays(step, history)
    tray_ids = [t.id for t in step.trays + fed]
    fed_before: dict[str, str | None] = {}
    if history is not None:
        fed_before = await step_history.read_states(ops.services, history[0], tray_ids)
        runner.note_before(fed_before)
    helpers = [asyncio.create_task(heartbeat()), asyncio.create_task(report((0, 0)))]
    try:
        with infra.watching():  # tray tasks share it: a deadline names an outage as such
            result = await runner.run()
        if result.status == "cancelled" and not _cancel_requested():
            # Not the workflow's cancel (the worker is shutting down, or the server gave
            # up on this attempt): fail the attempt, so Temporal runs the step again on
            # a worker that is up, resuming from the last heartbeat.
            raise asyncio.CancelledError()
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await step_ops.observed.close()  # the trays show what the step saw before it ends
    if history is not None:
        kind, code = history
        after = await step_history.read_states(ops.services, kind, tray_ids)
        ends = runner.ends(after) + step_history.fed_ends(fed, result, fed_before, after)
        await step_history.record_step(ops.services, step, kind, code, result.status, ends)
    return result
