"""The tray links' copy of a finished task's status (`task_trays.finished_status`).

A tray's tasks in one finished status (`GET /task?trayId=…&status=Failed`) are one range
of `ix_task_trays_tray_site_finished` because each link carries its task's status once
the task is finished (it never changes after that). `add_tasks` / `insert_tasks` write it
with the links; afterwards a trigger on `tasks` sets it in the same transaction as the
transition, whichever code path makes it. Migration 0006 creates the trigger from a
frozen copy of this SQL.
"""

from __future__ import annotations

# The domain's finished statuses (FINISHED_TASK_STATUSES) as SQL; a test keeps them equal.
FINISHED_SQL = "('Succeeded', 'Failed', 'Terminated')"
_LINK_STATUS = (
    f"UPDATE task_trays SET finished_status = CASE WHEN NEW.status IN {FINISHED_SQL}"
    " THEN NEW.status END WHERE task_id = NEW.id"
)
SQLITE_LINK_TRIGGERS: tuple[str, ...] = (
    f"""CREATE TRIGGER tasks_link_finished AFTER UPDATE OF status ON tasks
WHEN OLD.status IS NOT NEW.status
    AND (NEW.status IN {FINISHED_SQL} OR OLD.status IN {FINISHED_SQL})
BEGIN
    {_LINK_STATUS};
END""",
)
POSTGRES_LINK_TRIGGERS: tuple[str, ...] = (
    f"""CREATE FUNCTION nico_task_link_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_LINK_STATUS};
    RETURN NULL;
END $$""",
    f"""CREATE TRIGGER tasks_link_finished AFTER UPDATE OF status ON tasks FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
    AND (NEW.status IN {FINISHED_SQL} OR OLD.status IN {FINISHED_SQL}))
EXECUTE FUNCTION nico_task_link_finished()""",
)
