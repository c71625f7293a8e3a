"""Another writer holding a SQLite file's write lock: what nico's own writes wait behind
(busy_timeout) while no error is raised."""

from __future__ import annotations

import sqlite3
import threading


def hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Another process's write transaction on the SQLite file, held for `seconds`."""
    locked = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        threading.Event().wait(seconds)
        conn.rollback()
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    locked.wait(5)
    return thread
