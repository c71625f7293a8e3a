"""The long-lived parts a process shares: settings, database, token verifier, Temporal
client, hardware backends. Built once by the CLI runner, read by API dependencies and
worker activities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nico.auth.tokens import TokenVerifier
from nico.config import Settings
from nico.hardware.registry import BackendRegistry
from nico.keyfiles import load_or_create_key, new_dev_key
from nico.secretbox import SecretBox
from nico.store.db import Database

if TYPE_CHECKING:
    from temporalio.client import Client


@dataclass
class Services:
    settings: Settings
    db: Database
    verifier: TokenVerifier
    secrets: SecretBox
    # Set by the runner once Temporal is reachable; None in API-only tests.
    temporal: Client | None = field(default=None)
    # Hardware backends by name and the tray references they act on.
    backends: BackendRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.backends = BackendRegistry(self.settings, self.db, self.secrets)


def resolve_keys(settings: Settings, *, create: bool) -> tuple[str | None, str]:
    """Dev-token key and credential key: from settings, else from (or into) the data dir."""
    dev_key = settings.auth_dev_key
    if dev_key is None and (create or (settings.data_dir / "dev-key").exists()):
        dev_key = load_or_create_key(settings.data_dir / "dev-key", new_dev_key)
    secret_key = settings.secret_key
    if secret_key is None:
        path = settings.data_dir / "secret-key"
        if not create and not path.exists():
            raise SystemExit(
                "NICO_SECRET_KEY is not set and no key exists under the data dir; "
                "set NICO_SECRET_KEY (a Fernet key) or run `nico serve` once"
            )
        secret_key = load_or_create_key(path, SecretBox.generate_key)
    return dev_key, secret_key


def build_services(settings: Settings, *, create_keys: bool = True) -> Services:
    dev_key, secret_key = resolve_keys(settings, create=create_keys)
    return Services(
        settings=settings,
        db=Database(settings.resolved_database_url()),
        verifier=TokenVerifier(settings, dev_key),
        secrets=SecretBox(secret_key),
    )
