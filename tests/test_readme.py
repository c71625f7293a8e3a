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


def test_readme_shows_real_bmcs_and_fault_drills_with_bodies_the_api_takes() -> None:
    import json
    import re

    from typer.testing import CliRunner

    from nico.cli.main import app
    from nico.schemas.inventory import RackCreateRequest
    from nico.schemas.simulator import FaultCreateRequest
    from tests.support.seed000 import assert_valid_task

    text = README.read_text()
    bmcs = _section(text, "Pointing a rack at real BMCs")
    for needed in ('"backend": "redfish"', "caBundle", "verifyTls", "firmwareCatalog"):
        assert needed in bmcs, needed
    for setting in ("NICO_BACKEND", "NICO_REDFISH_VERIFY_TLS", "NICO_REDFISH_CA_BUNDLE"):
        assert setting in bmcs, setting
    rack = bmcs.split("cat > rack-07.json <<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    body = json.loads(rack.replace("$SITE", "3f6c0000-0000-0000-0000-000000000000"))
    assert RackCreateRequest.model_validate(body).backend == "redfish"

    drills = _section(text, "Fault drills on the simulator")
    for fault in ("unreachable", "power-fails", "power-hangs", "firmware-fails", "slow:"):
        assert f"`{fault}" in drills, fault
    api_body = re.search(r'-d "(\{\\"siteId.*?"fault\\".*?\})"', drills)
    assert api_body is not None
    FaultCreateRequest.model_validate_json(api_body.group(1).replace('\\"', '"'))
    runner = CliRunner()
    for command in ("add", "list", "clear"):
        assert runner.invoke(app, ["sim", "fault", command, "--help"]).exit_code == 0, command
    # The drill report docs/drills.md shows is a task as seed 000 defines it.
    drill_doc = (README.parent / "docs" / "drills.md").read_text()
    report = drill_doc.split("## A drill, start to finish", 1)[1].split("```json\n", 1)[1]
    assert_valid_task(json.loads(report.split("\n```", 1)[0]))


def _nico_lines(text: str) -> list[str]:
    """Every `nico …` command line of the README's bash blocks (also after `$(`)."""
    import re

    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            lines += re.findall(r"(?:^|\$\()\s*(nico [^)#|]*)", line)
    return lines


def test_every_nico_command_the_readme_shows_parses() -> None:
    """Each command path exists, and its options are the command's own (parsed against
    the real command with `--help` appended, which stops before any network call)."""
    import shlex

    from typer.testing import CliRunner

    from nico.cli.main import app

    lines = _nico_lines(README.read_text())
    assert "nico rack power rack-01 on --wait" in [line.strip() for line in lines]
    assert "nico task list" in [line.strip() for line in lines]
    runner = CliRunner()
    for line in lines:
        words = [w for w in shlex.split(line) if not w.startswith("$")]
        words = [w.replace("…", "") for w in words if w.replace("…", "")]
        options = [w for w in words[1:] if w.startswith("-")]
        path = []
        for word in words[1:]:
            if word.startswith("-") or word[0].isupper() or "/" in word or "-" in word:
                break
            path.append(word)
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (line, result.output)
        for option in options:
            assert option.split("=")[0] in result.output, (line, option)
