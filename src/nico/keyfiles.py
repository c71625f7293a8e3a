"""Keys that `nico serve` generates on first start and keeps under the data dir."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def load_or_create_key(path: Path, generate: Callable[[], str]) -> str:
    """Read a key file, or create it (mode 0600) with a fresh key when missing."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def new_dev_key() -> str:
    return secrets.token_urlsafe(48)
