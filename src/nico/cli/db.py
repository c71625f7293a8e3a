"""`nico db upgrade`: apply migrations to NICO_DATABASE_URL (also done on every start)."""

from __future__ import annotations

import asyncio

import typer

app = typer.Typer(help="Database schema commands.", no_args_is_help=True, rich_markup_mode=None)


@app.command("upgrade")
def upgrade() -> None:
    """Migrate the database to the newest schema."""
    from nico.config import Settings
    from nico.logs import configure_logging
    from nico.store.db import Database

    settings = Settings()
    configure_logging(settings)  # one line as each migration starts and ends

    async def run() -> None:
        db = Database(settings.resolved_database_url())
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(run())
    typer.echo("database is at the newest schema")
