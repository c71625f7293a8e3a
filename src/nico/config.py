"""Every `NICO_*` setting, in one place. The README documents each one."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/nico` (`~/.local/share/nico`): one fixed place, so `nico token` and
    `nico serve` find the same dev key whichever directory they are run from."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nico"


_RETENTION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_TASK_RETENTION = 36500 * 86400.0  # 100 years


class Settings(BaseSettings):
    """Service settings read from `NICO_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="NICO_", extra="ignore")

    # --- process / API -------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8388, description="Port the API listens on.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded database, Temporal file and keys live "
        "(default `$XDG_DATA_HOME/nico`, i.e. `~/.local/share/nico`, wherever nico is run from).",
    )
    log_level: str = Field("INFO", description="Python log level (DEBUG, INFO, WARNING...).")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or json (one object a line; engine lines carry "
        "task_id and rack).",
    )
    metrics_dir: Path | None = Field(
        None,
        description="Directory where the processes serving /metrics share their counters "
        "(Prometheus multiprocess mode). Unset: each process exports its own; `nico serve` "
        "uses <data_dir>/metrics.",
    )
    api_workers: int = Field(
        1,
        ge=1,
        description="Processes `nico api` runs on NICO_HOST:NICO_PORT (one socket, the kernel "
        "spreads connections); about one per core. Set NICO_METRICS_DIR with more than one, "
        "so /metrics counts every process. `nico serve` runs as many (the background loops "
        "in the first).",
    )
    api_name: str = Field("nico", description="API name segment in /v2/org/{org}/{api_name}.")

    # --- database ------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite under data_dir. "
        "PostgreSQL: postgresql+asyncpg://user@host/db",
    )

    # --- auth ----------------------------------------------------------------------
    auth_jwks_url: str | None = Field(
        None,
        description="OIDC issuer JWKS URL (Keycloak etc.); needs NICO_AUTH_ISSUER. When set, "
        "the data-dir dev key is neither loaded nor created.",
    )
    auth_issuer: str | None = Field(
        None, description="Expected `iss` of OIDC tokens; required with NICO_AUTH_JWKS_URL."
    )
    auth_audience: str | None = Field(
        None,
        description=(
            "Expected `aud` of OIDC tokens. Unset: any audience is accepted; set it in production."
        ),
    )
    auth_roles_claim: str = Field(
        "realm_access.roles", description="Dot path of the claim holding `org:ROLE` entries."
    )
    auth_dev_key: str | None = Field(
        None,
        description="HS256 secret for dev tokens (`nico token`). Unset: the key file under "
        "data_dir (`nico serve` / `nico token` create it), used only while "
        "NICO_AUTH_JWKS_URL is unset.",
    )

    # --- Temporal ------------------------------------------------------------------
    temporal_address: str | None = Field(
        None,
        description="host:port of an existing Temporal frontend. Unset: `nico serve` starts "
        "the embedded dev server.",
    )
    temporal_namespace: str = Field("default", description="Temporal namespace.")
    temporal_task_queue: str = Field("nico-tasks", description="Temporal task queue name.")
    temporal_dev_port: int = Field(7233, description="Port of the embedded Temporal dev server.")
    temporal_dev_http_port: int | None = Field(
        None,
        description="Port of the embedded Temporal server's HTTP API. Unset: a free port; "
        "like all its listeners it is bound to 127.0.0.1.",
    )
    temporal_dev_metrics_port: int | None = Field(
        None,
        description="Port of the embedded Temporal server's /metrics. Unset: a free port "
        "on 127.0.0.1.",
    )

    # --- hardware ------------------------------------------------------------------
    backend: Literal["simulator", "redfish"] = Field(
        "simulator", description="Default tray backend when the inventory names none."
    )
    sim_latency: float = Field(
        0.2, description="Seconds a simulated power transition or BMC call takes."
    )
    sim_firmware_duration: float = Field(
        3.0, description="Seconds a simulated firmware update takes to complete."
    )
    secret_key: str | None = Field(
        None,
        description="Fernet key encrypting BMC credentials at rest; `nico serve` generates "
        "one under data_dir when unset.",
    )
    redfish_verify_tls: bool = Field(True, description="Verify BMC TLS certificates.")
    redfish_ca_bundle: str | None = Field(None, description="CA bundle file for BMC TLS.")
    redfish_timeout: float = Field(30.0, description="Per-request timeout to a BMC, seconds.")
    bmc_concurrency: int = Field(
        4,
        description=(
            "Max concurrent requests per BMC in one worker process (N workers: up to N times this)."
        ),
    )
    redfish_power_wait: float = Field(
        120.0,
        description="Seconds a Redfish power fallback (e.g. ForceOff, wait, On) waits for "
        "the tray to read Off before powering it on again.",
    )

    # --- task manager --------------------------------------------------------------
    queue_max_per_rack: int = Field(5, description="Max Waiting tasks per rack.")
    queue_default_timeout: float = Field(
        3600.0, description="Seconds a queued task waits before it expires."
    )
    sweep_interval: float = Field(
        30.0, description="Seconds between queue sweeps and reconciler passes."
    )
    state_sync_interval: float = Field(
        300.0,
        ge=0,
        description="Seconds in which the worker's state sync reads the power state and "
        "firmware inventory of every tray of every Flow-enabled site once (reads spread over "
        "the interval, never a command); 0 turns the sync off (docs/state.md).",
    )
    reconcile_grace: float = Field(
        60.0,
        description="Seconds a Pending/Running task must be untouched before the reconciler "
        "re-dispatches it or fails it for a closed or missing workflow.",
    )
    task_retention: float | None = Field(
        None,
        description="How long finished tasks are kept, counted from their creation: seconds "
        "or a duration such as `400d`, `72h`, `90m` (at most `36500d`). Older finished tasks "
        "(Succeeded, Failed, Terminated) and tray history rows older than it are deleted in "
        "small batches by the worker's sweep; an unfinished task is never deleted. Unset: "
        "keep every task and history row. An Idempotency-Key replays for 24 h, or this "
        "retention when longer (unset: for good).",
    )
    cancel_wait: float = Field(
        15.0,
        description="Seconds a cancel waits for the workflow to stop gracefully (it then "
        "finalizes its own report) before terminating it. After a terminate the cancel "
        "finalizes the workflow's live report if its worker still answers, else the last "
        "saved one, losing counts since that save. Longer: a slower cancel answer when "
        "workers are overloaded; shorter: more terminates.",
    )

    # --- demo seed -----------------------------------------------------------------
    seed_demo: bool = Field(True, description="`nico serve` seeds the demo org, site and rack.")

    @field_validator("task_retention", mode="before")
    @classmethod
    def _retention_seconds(cls, value: object) -> object:
        """Accept `400d` / `72h` / `90m` / `30s` as well as plain seconds; empty = unset."""
        if isinstance(value, str):
            text = value.strip().lower()
            if not text:
                return None
            unit = _RETENTION_UNITS.get(text[-1])
            if unit is not None:
                return float(text[:-1]) * unit
        return value

    @field_validator("task_retention")
    @classmethod
    def _retention_positive(cls, value: float | None) -> float | None:
        if value is None:
            return value
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive duration")
        if value > MAX_TASK_RETENTION:
            # The sweep computes now minus the retention: past year 1 it cannot.
            raise ValueError("must be at most 36500d (100 years); unset keeps everything")
        return value

    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'nico.db').as_posix()}"

    def api_prefix(self) -> str:
        return f"/v2/org/{{org}}/{self.api_name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (tests build their own `Settings` instead)."""
    return Settings()
