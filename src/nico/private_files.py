"""Owner-only (0600) files under the data dir: the databases hold BMC passwords that the
0600 key next to them decrypts, so they must not be readable by other local users."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_MODE = 0o600
# SQLite's companions of a database file; they hold the same data while it is open.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def restrict_sqlite_files(database: Path) -> None:
    """Make an existing database and its companion files owner-only (older data dirs were
    created 0644). SQLite gives new companion files the database file's mode."""
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, PRIVATE_MODE)


def create_private_sqlite_file(database: Path) -> None:
    """Create the (empty, which SQLite reads as a new database) file 0600 before SQLite
    opens it, so it never exists with a wider mode; then restrict what is there."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    restrict_sqlite_files(database)
