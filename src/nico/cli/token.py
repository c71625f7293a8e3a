"""`nico token`: print a bearer token signed by the local dev key."""

from __future__ import annotations

from typing import Annotated

import typer


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
        """Mint a dev token signed with NICO_AUTH_DEV_KEY, else with the data-dir key (created
        on first use; `nico serve` accepts it while no OIDC issuer is configured)."""
        from nico.auth.tokens import mint_dev_token
        from nico.config import Settings
        from nico.keyfiles import load_or_create_key, new_dev_key
        from nico.rules.durations import DurationError, parse_duration
        from nico.services import DEV_KEY_FILE

        try:
            seconds = int(parse_duration(ttl).seconds)
        except DurationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--ttl") from None
        if seconds <= 0:
            raise typer.BadParameter("must be positive", param_hint="--ttl")
        settings = Settings()
        dev_key = settings.auth_dev_key or load_or_create_key(
            settings.data_dir / DEV_KEY_FILE, new_dev_key
        )
        if settings.auth_jwks_url and not settings.auth_dev_key:
            typer.echo(
                "note: NICO_AUTH_JWKS_URL is set, so `nico serve` / `nico api` accept this "
                "token only when they run with NICO_AUTH_DEV_KEY set to the same key",
                err=True,
            )
        typer.echo(
            mint_dev_token(
                dev_key, org, role or ["PROVIDER_ADMIN"], ttl_seconds=seconds, subject=subject
            )
        )
