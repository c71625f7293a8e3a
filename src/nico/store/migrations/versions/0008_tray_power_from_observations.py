"""trays.power_state is what the tray's observation shows: rows from before reads were kept

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

`powerState` of `GET /tray`, `GET /tray/{id}` and a rack's components is `trays.power_state`,
which `nico.store.observations.record_power` writes in the same transaction as the
observation: the last good read's state, `Unknown` while the last read failed. A tray whose
value was written before observations were kept (revision 0004) had no observation behind
it: `GET /tray/{id}/power` said `Unknown` (never read) while `GET /tray/{id}` kept the old
value, `On`, for good. Every tray's value is recomputed here from its observation, the way
`record_power` writes it: never read, or read only for firmware, is `Unknown`.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of what nico.store.observations.record_power shows, as of this revision.
_SHOWN = (
    "COALESCE((SELECT CASE WHEN o.power_error IS NOT NULL THEN 'Unknown' ELSE o.power_state END"
    " FROM tray_observations o WHERE o.tray_id = trays.id), 'Unknown')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Recorders lock tray rows (FOR UPDATE) before writing the observation: this waits
        # for the ones in flight and holds new ones until the migration commits, so the
        # UPDATE below reads every observation as committed (readers are not blocked).
        op.execute("LOCK TABLE trays IN EXCLUSIVE MODE")
    op.execute(f"UPDATE trays SET power_state = {_SHOWN} WHERE power_state <> {_SHOWN}")


def downgrade() -> None:
    """Nothing to undo: the values replaced were not observations."""
