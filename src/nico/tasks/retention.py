"""Task history retention (`NICO_TASK_RETENTION`): the worker's sweep deletes finished
tasks created longer ago than the setting, and tray history rows (power and firmware
changes, finished steps) older than it, a small batch at a time.

One setting for both: a history row of a finished step names its task, and a site that
keeps N days of what its tasks did keeps N days of what happened to its trays.

A site keeps every task by default. With a retention set, each sweep deletes at most
`MAX_BATCHES` batches of `BATCH` tasks per site, each batch its own short transaction, so
pruning years of history spreads over several sweeps instead of holding the database
(one SQLite writer) for minutes. Not-finished tasks are never deleted; totals in the task
lists follow at once (the task counters' triggers count each delete in its transaction).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from nico.services import Services
from nico.store import history as history_store
from nico.store import tasks as task_store
from nico.store.models import Site, utcnow

log = logging.getLogger("nico.tasks")

BATCH = 500
MAX_BATCHES = 20


async def prune_history(services: Services) -> int:
    """One retention pass over every site; returns how many tasks were deleted."""
    retention = services.settings.task_retention
    if retention is None:
        return 0
    cutoff = utcnow() - timedelta(seconds=retention)
    async with services.db.session() as session:
        site_ids = list((await session.execute(select(Site.id))).scalars())
    deleted = 0
    for site_id in site_ids:
        for _ in range(MAX_BATCHES):
            async with services.db.session() as session:
                gone = await task_store.prune_finished_tasks(
                    session, site_id, created_before=cutoff, limit=BATCH
                )
            deleted += gone
            if gone < BATCH:
                break
    if deleted:
        log.info("task retention: deleted %d finished tasks created before %s", deleted, cutoff)
    return deleted


async def prune_tray_history(services: Services) -> int:
    """One retention pass over the tray history; returns how many rows were deleted.

    Rack by rack along the `(rack_id, at, id)` index (the racks with old rows found in
    one statement), each batch its own transaction, at most `MAX_BATCHES` x `BATCH` rows
    per pass: a backlog of years goes over several sweeps."""
    retention = services.settings.task_retention
    if retention is None:
        return 0
    cutoff = utcnow() - timedelta(seconds=retention)
    async with services.db.session() as session:
        rack_ids = await history_store.racks_with_history_before(session, cutoff)
    deleted, budget = 0, MAX_BATCHES
    for rack_id in rack_ids:
        while budget > 0:
            budget -= 1
            async with services.db.session() as session:
                gone = await history_store.prune_rack_history(
                    session, rack_id, before=cutoff, limit=BATCH
                )
            deleted += gone
            if gone < BATCH:
                break
        if budget <= 0:
            break
    if deleted:
        log.info("history retention: deleted %d tray history rows from before %s", deleted, cutoff)
    return deleted
