"""The task manager's periodic work, run in the worker process (and in `nico serve`).

Every `NICO_SWEEP_INTERVAL` seconds: expire and promote queued tasks, then reconcile
tasks whose workflow is gone, then prune finished tasks and tray history rows past
`NICO_TASK_RETENTION`, operation ledger entries of tasks finished long ago and
Idempotency-Keys past their replay window (`key_retention`), then fold the task
counters' deltas. A pass that fails is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from nico.engine.infra import OUTAGES
from nico.services import Services
from nico.store.task_counts import compact_task_counts
from nico.tasks.key_retention import prune_idempotency_keys, prune_ledger
from nico.tasks.queue import promote_rack, sweep_queues
from nico.tasks.reconcile import reconcile
from nico.tasks.retention import prune_history, prune_tray_history

log = logging.getLogger("nico.tasks")

# What each of this module's passes is called in the log.
(
    SWEEP,
    RECONCILER,
    RETENTION,
    HISTORY_RETENTION,
    LEDGER_RETENTION,
    KEY_RETENTION,
    COUNTS,
    PROMOTION,
) = (
    "queue sweep",
    "reconciler",
    "task retention",
    "history retention",
    "ledger retention",
    "key retention",
    "task counter compaction",
    "queue promotion",
)


async def run_pass(services: Services) -> None:
    """One sweep, one reconciler pass, the retention passes, then the task counters'
    deltas folded (`nico.store.task_counts`). An outage of the database or Temporal is
    one WARNING line per pass kind when it begins and one when it ends (`OUTAGES`);
    anything else is logged with its traceback, as the bug it is."""
    for component, work in (
        (SWEEP, sweep_queues),
        (RECONCILER, reconcile),
        (RETENTION, prune_history),
        (HISTORY_RETENTION, prune_tray_history),
        (LEDGER_RETENTION, prune_ledger),
        (KEY_RETENTION, prune_idempotency_keys),
        (COUNTS, lambda services: compact_task_counts(services.db)),
    ):
        try:
            await work(services)
        except Exception as exc:
            if not OUTAGES.failed(component, exc):
                log.exception("%s pass failed", component)
        else:
            OUTAGES.answered(component)


async def run_background_loops(services: Services) -> None:
    """Run passes forever (cancel the coroutine to stop); the first runs at once so tasks
    stranded across a restart move without waiting a whole interval."""
    while True:
        await run_pass(services)
        await asyncio.sleep(services.settings.sweep_interval)


def on_task_finished(services: Services) -> Callable[[object], Awaitable[None]]:
    """The hook the worker calls when a task reaches a final status: promote its rack
    (given as a UUID or its string)."""

    async def promote(rack_id: object) -> None:
        try:
            await promote_rack(services, uuid.UUID(str(rack_id)))
        except Exception as exc:  # the periodic sweep promotes what this missed
            if not OUTAGES.failed(PROMOTION, exc):
                log.exception("promoting the queue of rack %s failed", rack_id)
        else:
            OUTAGES.answered(PROMOTION)

    return promote
