"""Task history retention (`NICO_TASK_RETENTION`): the worker's sweep deletes finished
tasks created longer ago than the setting, a small batch at a time.

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
