"""The long-lived parts a process shares: settings, database, token verifier, Temporal
client, hardware backends. Built once by the CLI runner, read by API dependencies and
worker activities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nico.auth.tokens import TokenVerifier, oidc_settings_problem
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


DEV_KEY_FILE = "dev-key"


def resolve_dev_key(settings: Settings, *, create: bool) -> str | None:
    """The key dev tokens are checked against, or None when dev tokens are off.

    NICO_AUTH_DEV_KEY when set. Otherwise, only while no OIDC issuer is configured, the
    data-dir key file (created when `create`): with NICO_AUTH_JWKS_URL set that file is
    neither read nor created, so a leftover key cannot open a production API.
    """
    if settings.auth_dev_key:
        return settings.auth_dev_key
    if settings.auth_jwks_url:
        return None
    path = settings.data_dir / DEV_KEY_FILE
    if create or path.exists():
        return load_or_create_key(path, new_dev_key)
    return None


def resolve_keys(settings: Settings, *, create: bool) -> tuple[str | None, str]:
    """Dev-token key (see `resolve_dev_key`) and credential key: from settings, else
    from (or into) the data dir."""
    dev_key = resolve_dev_key(settings, create=create)
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


def auth_summary(settings: Settings, dev_key: str | None) -> str:
    """One startup line saying which bearer tokens this process accepts."""
    if dev_key is None:
        dev = "dev tokens are off"
    elif settings.auth_dev_key:
        dev = "dev tokens signed with NICO_AUTH_DEV_KEY are accepted"
    else:
        dev = f"dev tokens signed with {settings.data_dir / DEV_KEY_FILE} are accepted"
    if settings.auth_jwks_url:
        oidc = f"OIDC tokens from {settings.auth_issuer} are accepted"
        if dev_key is None:
            dev += " (NICO_AUTH_JWKS_URL is set, so the data-dir dev key is not loaded)"
        return f"auth: {oidc}; {dev}"
    if dev_key is None:
        return "auth: no OIDC issuer and no dev key, so every request is refused"
    return f"auth: {dev}; no OIDC issuer (NICO_AUTH_JWKS_URL) is configured"


def build_services(settings: Settings, *, create_keys: bool = True) -> Services:
    problem = oidc_settings_problem(settings)
    if problem is not None:
        raise SystemExit(problem)
    dev_key, secret_key = resolve_keys(settings, create=create_keys)
    return Services(
        settings=settings,
        db=Database(settings.resolved_database_url()),
        verifier=TokenVerifier(settings, dev_key),
        secrets=SecretBox(secret_key),
    )
