"""The README stays true: every NICO_* setting is documented, and the two commands."""

from pathlib import Path

from nico.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [
        f"NICO_{n.upper()}" for n in Settings.model_fields if f"NICO_{n.upper()}" not in text
    ]
    assert missing == []


def test_readme_names_run_and_test_commands() -> None:
    text = README.read_text()
    assert "make run" in text and "make test" in text


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_tells_how_to_run_in_production_and_authenticate() -> None:
    from typer.testing import CliRunner

    from nico.cli.main import app

    text = README.read_text()
    production = _section(text, "Production")
    for needed in (
        "nico api",
        "nico worker",
        "nico db upgrade",
        "NICO_DATABASE_URL",
        "NICO_TEMPORAL_ADDRESS",
        "NICO_SECRET_KEY",
        "NICO_AUTH_JWKS_URL",
        "NICO_AUTH_ISSUER",
    ):
        assert needed in production, needed
    authentication = _section(text, "Authentication")
    for needed in ("nico token", "NICO_AUTH_DEV_KEY", "dev-key", "NICO_AUTH_JWKS_URL"):
        assert needed in authentication, needed
    # The commands the sections name exist.
    runner = CliRunner()
    for command in (["api"], ["worker"], ["token"], ["db", "upgrade"]):
        assert runner.invoke(app, [*command, "--help"]).exit_code == 0, command
