"""E2E fixtures: `live` serves the real API over HTTP with a worker on the time-skipping
server, for a Flow site with one simulated NVL72-shaped rack (modules with other racks
define their own `live`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from tests.support.inventory import make_site_with_rack
from tests.support.live import Live, live_api


@pytest.fixture
async def live(
    temporal_env: WorkflowEnvironment, services: Services, auth: dict[str, str]
) -> AsyncIterator[Live]:
    rack = await make_site_with_rack(services)
    async with live_api(services, temporal_env, auth, rack) as served:
        yield served
