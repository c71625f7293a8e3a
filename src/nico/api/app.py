"""The FastAPI application: NICo routes under /v2/org/{org}/nico, one error format."""

from __future__ import annotations

from fastapi import FastAPI

from nico import __version__
from nico.api.errors import install_error_handlers
from nico.api.health import install_health
from nico.api.openapi import install_openapi
from nico.api.routers import (
    firmware,
    history,
    operations,
    power,
    provider,
    rack_rules,
    racks,
    rules,
    simulator,
    sites,
    tasks,
    trays,
)
from nico.services import Services

# Registration order matters where static segments share a prefix with `{id}` routes:
# `/task/rule` must be matched before `/task/{id}`.
_ROUTERS = (
    (provider.router, "Infrastructure Provider"),
    (sites.router, "Site"),
    (rules.router, "Rule"),
    (rack_rules.router, "Rule"),
    (tasks.router, "Task"),
    (racks.router, "Rack"),
    (trays.router, "Tray"),
    (history.router, "Tray"),
    (power.router, "Tray"),
    (firmware.router, "Firmware"),
    (operations.router, "Operation"),
    (simulator.router, "Simulator"),
)


def create_app(services: Services) -> FastAPI:
    """Build the app around already-constructed services (tests pass their own)."""
    app = FastAPI(
        title="NVIDIA Infra Controller REST API (nico-flow)",
        version=__version__,
        description="Racks, trays, tasks and operation rules; every operation is a durable "
        "Temporal workflow.",
    )
    app.state.services = services
    install_error_handlers(app)
    install_health(app)
    prefix = services.settings.api_prefix()
    for router, tag in _ROUTERS:
        app.include_router(router, prefix=prefix, tags=[tag])
    install_openapi(app)
    return app
