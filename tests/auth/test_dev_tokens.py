"""When dev tokens are accepted: NICO_AUTH_DEV_KEY, or the data-dir key file only while
no OIDC issuer is configured. `nico token` mints with that file for local use."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from nico.api.app import create_app
from nico.auth.tokens import INVALID_TOKEN
from nico.cli.main import app as nico_cli
from nico.cli.serve import start_services
from nico.config import Settings
from nico.services import Services, build_services

ISSUER = "https://keycloak.example/realms/nico"
# Never fetched: a dev token is refused (or accepted) before any JWKS lookup.
JWKS_URL = "http://127.0.0.1:9/realms/nico/certs"
PROVIDER = "/v2/org/demo/nico/infrastructure-provider/current"


def mint_with_nico_token(data_dir: Path, **env: str) -> str:
    result = CliRunner().invoke(
        nico_cli, ["token", "--org", "demo"], env={"NICO_DATA_DIR": str(data_dir), **env}
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def local_settings(data_dir: Path, secret_key: str, *, oidc: bool = False) -> Settings:
    """No NICO_AUTH_DEV_KEY; with `oidc`, an issuer and its JWKS URL."""
    return Settings(
        data_dir=data_dir,
        secret_key=secret_key,
        auth_dev_key=None,
        auth_jwks_url=JWKS_URL if oidc else None,
        auth_issuer=ISSUER if oidc else None,
    )


async def status_of(services: Services, token: str) -> tuple[int, dict[str, object]]:
    await services.db.migrate()
    transport = httpx.ASGITransport(app=create_app(services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as client:
            response = await client.get(PROVIDER, headers={"Authorization": f"Bearer {token}"})
    finally:
        await services.db.dispose()
    return response.status_code, response.json()


async def test_without_an_oidc_issuer_the_key_file_from_nico_token_is_accepted(
    tmp_path: Path, secret_key: str
) -> None:
    token = mint_with_nico_token(tmp_path)
    # `nico api` (create_keys=False) loads the file `nico token` created.
    services = build_services(local_settings(tmp_path, secret_key), create_keys=False)
    assert (await status_of(services, token))[0] == 200


@pytest.mark.parametrize("create_keys", [True, False], ids=["nico serve", "nico api"])
async def test_with_an_oidc_issuer_a_leftover_key_file_opens_nothing(
    tmp_path: Path, secret_key: str, create_keys: bool
) -> None:
    token = mint_with_nico_token(tmp_path)
    oidc = local_settings(tmp_path, secret_key, oidc=True)
    status, body = await status_of(build_services(oidc, create_keys=create_keys), token)
    assert (status, body["message"], body["data"]) == (
        401,
        INVALID_TOKEN,
        {"reason": "unknown issuer"},
    )


async def test_with_an_oidc_issuer_no_key_file_is_created_and_startup_says_so(
    tmp_path: Path, secret_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    oidc = local_settings(tmp_path, secret_key, oidc=True)
    with caplog.at_level(logging.INFO, logger="nico.auth"):
        services = start_services(oidc, create_keys=True)
    await services.db.dispose()
    assert not (tmp_path / "dev-key").exists()
    assert services.verifier.dev_key is None
    [line] = [r.getMessage() for r in caplog.records if r.name == "nico.auth"]
    assert f"OIDC tokens from {ISSUER} are accepted" in line
    assert "dev tokens are off" in line and "dev key is not loaded" in line


def test_nico_token_still_mints_locally_and_warns_when_oidc_is_configured(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        nico_cli,
        ["token"],
        env={
            "NICO_DATA_DIR": str(tmp_path),
            "NICO_AUTH_JWKS_URL": JWKS_URL,
            "NICO_AUTH_ISSUER": ISSUER,
        },
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count(".") == 2  # a JWT
    assert "NICO_AUTH_DEV_KEY" in result.stderr
    assert (tmp_path / "dev-key").exists()


@pytest.mark.parametrize("command", ["serve", "api", "worker"])
def test_jwks_without_an_issuer_stops_startup_naming_the_setting(
    tmp_path: Path, secret_key: str, command: str
) -> None:
    result = CliRunner().invoke(
        nico_cli,
        [command],
        env={
            "NICO_DATA_DIR": str(tmp_path),
            "NICO_SECRET_KEY": secret_key,
            "NICO_AUTH_JWKS_URL": JWKS_URL,
            "NICO_AUTH_ISSUER": "",
        },
    )
    assert result.exit_code == 1
    assert "NICO_AUTH_ISSUER is required when NICO_AUTH_JWKS_URL is set" in result.output
    assert not (tmp_path / "dev-key").exists()
