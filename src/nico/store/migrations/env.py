"""Alembic environment: runs on a connection handed in by `Database.migrate`, or on
`sqlalchemy.url` when invoked from the alembic CLI during development.

`Database.migrate` hands in a connection already in a transaction, one revision at a
time, so Alembic opens none of its own: each migration commits on its own there."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from nico.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url (a sync URL) to run alembic directly")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
