"""`nico token`: print a bearer token signed by the local dev key."""

from __future__ import annotations

from typing import Annotated

import typer

from nico.auth.tokens import mint_dev_token
from nico.config import Settings
from nico.rules.durations import DurationError, parse_duration
from nico.services import resolve_keys


def register(app: typer.Typer) -> None:
    @app.command("token")
    def token(
        org: Annotated[str, typer.Option(help="Org the token grants access to.")] = "demo",
        role: Annotated[
            list[str] | None, typer.Option(help="Role in the org (default PROVIDER_ADMIN).")
        ] = None,
        ttl: Annotated[str, typer.Option(help="Lifetime as a duration, e.g. 1h or 30m.")] = "1h",
        subject: Annotated[str, typer.Option(help="Token subject (`sub`).")] = "dev",
    ) -> None:
        """Mint a dev token (needs NICO_AUTH_DEV_KEY or the key `nico serve` generated)."""
        try:
            seconds = int(parse_duration(ttl).seconds)
        except DurationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--ttl") from None
        if seconds <= 0:
            raise typer.BadParameter("must be positive", param_hint="--ttl")
        settings = Settings()
        dev_key, _ = resolve_keys(settings, create=True)
        assert dev_key is not None
        typer.echo(
            mint_dev_token(
                dev_key, org, role or ["PROVIDER_ADMIN"], ttl_seconds=seconds, subject=subject
            )
        )
