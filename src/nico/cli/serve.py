"""`nico serve` (everything, embedded defaults) and `nico api` (API only)."""

from __future__ import annotations

import asyncio
import logging

import typer
import uvicorn

from nico.api.app import create_app
from nico.config import Settings
from nico.services import Services, build_services


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def prepare(services: Services) -> None:
    """Create/migrate the schema; seeding and Temporal join here as they land."""
    await services.db.migrate()


async def run_api(services: Services) -> None:
    settings = services.settings
    config = uvicorn.Config(
        create_app(services),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="off",
    )
    await uvicorn.Server(config).serve()


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve() -> None:
        """Run everything on embedded defaults: database, API on 127.0.0.1:8388."""
        settings = Settings()
        configure_logging(settings)
        services = build_services(settings, create_keys=True)

        async def main() -> None:
            try:
                await prepare(services)
                await run_api(services)
            finally:
                await services.db.dispose()

        asyncio.run(main())

    @app.command("api")
    def api() -> None:
        """Run only the API (production: several replicas against NICO_DATABASE_URL)."""
        settings = Settings()
        configure_logging(settings)
        services = build_services(settings, create_keys=False)

        async def main() -> None:
            try:
                await services.db.migrate()
                await run_api(services)
            finally:
                await services.db.dispose()

        asyncio.run(main())
