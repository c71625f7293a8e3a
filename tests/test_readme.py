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
