"""ACPowerCycle's pre-check: a shelf whose backend cannot cut AC is a 400 naming it,
before any task exists."""

from __future__ import annotations

import pytest

from nico.domain import ComponentType
from nico.errors import ValidationFailed
from nico.services import Services
from nico.tasks import targets
from tests.support.inventory import make_site_with_rack


async def test_shelves_whose_backend_cannot_cut_ac_are_named(services: Services) -> None:
    rack = await make_site_with_rack(services)
    async with services.db.session() as session:
        [group] = await targets.racks_by_names(session, rack.site_id, ["rack-01"])
        with pytest.raises(ValidationFailed) as refused:
            await targets.ac_power_cycle_targets(
                session,
                [group],
                backend_of=lambda tray, _rack: "legacy" if tray.name == "powershelf-02" else "sim",
                can_cycle=lambda backend, kind: (
                    backend == "sim" and kind is ComponentType.POWERSHELF
                ),
                summary="Failed to validate request data",
            )
    assert refused.value.errors == [
        (
            "state",
            "ACPowerCycle: rack rack-01: cannot AC power cycle powershelf-02 (legacy backend)",
        )
    ]
