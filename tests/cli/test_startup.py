"""Client commands start fast because they never import the server; they find the API
and the dev key the way `nico serve` does, wherever they are run from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from nico.cli import http
from nico.cli.main import SERVER_COMMANDS, app
from nico.config import Settings

SERVER_MODULES = ("fastapi", "temporalio", "sqlalchemy", "uvicorn", "alembic", "pydantic_settings")


def test_client_commands_do_not_import_the_server() -> None:
    code = (
        "import json, sys; import nico.cli.main; "
        f"print(json.dumps([m for m in {SERVER_MODULES!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == []


def test_server_commands_are_listed_and_run_their_real_help() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    listed = runner.invoke(app, ["--help"])
    for name in SERVER_COMMANDS:
        assert name in listed.output
    served = runner.invoke(app, ["serve", "--help"])
    assert served.exit_code == 0 and "Usage: nico serve" in served.output
    upgrade = runner.invoke(app, ["db", "upgrade", "--help"])
    assert upgrade.exit_code == 0 and "newest schema" in upgrade.output


def test_client_defaults_are_the_servers() -> None:
    fields = Settings.model_fields
    assert fields["host"].default == http.DEFAULT_HOST
    assert fields["port"].default == http.DEFAULT_PORT
    assert fields["api_name"].default == http.DEFAULT_API_NAME


def test_api_url_follows_nico_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NICO_HOST", raising=False)
    monkeypatch.delenv("NICO_PORT", raising=False)
    assert http.target(None, "demo", "t").api_url == "http://127.0.0.1:8388"
    monkeypatch.setenv("NICO_PORT", "9000")
    monkeypatch.setenv("NICO_HOST", "0.0.0.0")
    assert http.target(None, "demo", "t").api_url == "http://127.0.0.1:9000"
    assert http.target("http://api:1/", "demo", "t").api_url == "http://api:1"


def test_token_and_serve_share_one_key_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NICO_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    tokens = []
    for where in ("a", "b"):
        cwd = tmp_path / where
        cwd.mkdir()
        ran = subprocess.run(
            [str(Path(sys.executable).parent / "nico"), "token"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        tokens.append(ran.stdout.strip())
        assert not (cwd / ".nico").exists()
    key_file = tmp_path / "xdg" / "nico" / "dev-key"
    key = key_file.read_text().strip()
    for token in tokens:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_aud": False})
        assert claims["iss"] == "nico-dev"
    # `nico serve` reads its keys from the same place.
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    monkeypatch.delenv("NICO_DATA_DIR", raising=False)
    assert Settings().data_dir == key_file.parent


def test_db_upgrade_migrates_and_says_so_migration_by_migration(tmp_path: Path) -> None:
    """`nico db upgrade`, as the README's production steps run it (it used to answer
    "unexpected extra argument"), logs each migration and ends at the newest schema."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NICO_")}
    env["NICO_DATA_DIR"] = str(tmp_path / "nico")
    done = subprocess.run(
        [sys.executable, "-m", "nico", "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "database is at the newest schema" in done.stdout
    assert "migration 0001 (" in done.stderr and "migration 0010: done in " in done.stderr
