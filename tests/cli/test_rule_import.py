"""`nico rule import` / `export`: upstream YAML loads unchanged, validation is
all-or-nothing, export reads back; once through a real uvicorn server over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from nico.api.app import create_app
from nico.cli import rules as rules_cli
from nico.cli.rules import CliError, export_rules, import_rules
from nico.services import Services
from tests.rules.support import BASE, make_site
from tests.support.postgres import run_blocking

# Upstream's batch layout: file-level version, snake_case keys, `operation_type:
# power_control`, `operation:` for the code, lower-case component names, a legacy step
# without a main operation.
UPSTREAM_YAML = """\
version: v1

rules:
  - name: "Graceful Power On"
    description: "Shelves, then switches, then compute"
    operation_type: power_control
    operation: power_on
    steps:
      - component_type: powershelf
        stage: 1
        max_parallel: 1
        timeout: 10m
        retry:
          max_attempts: 3
          initial_interval: 5s
          backoff_coefficient: 2.0
        main_operation:
          name: PowerControl
        post_operation:
          - name: VerifyPowerStatus
            timeout: 3m
            poll_interval: 5s
            parameters:
              expected_status: "on"
          - name: VerifyReachability
            timeout: 3m
            poll_interval: 10s
            parameters:
              component_types: ["compute", "nvlswitch"]
      - component_type: compute
        stage: 2
        max_parallel: 8
        timeout: 20m
        main_operation:
          name: PowerControl
        post_operation:
          - name: Sleep
            parameters:
              duration: 30s

  - name: "Default Firmware Upgrade"
    operation_type: firmware_control
    operation: upgrade
    steps:
      - component_type: compute
        stage: 1
        max_parallel: 4
        timeout: 45m
        main_operation:
          name: FirmwareControl

  - name: "Legacy Power Off"
    description: "Old format using delay_after instead of actions"
    operation_type: power_control
    operation: power_off
    steps:
      - component_type: compute
        stage: 1
        max_parallel: 8
        delay_after: 30s
        timeout: 20m
"""


@pytest.fixture
async def site_id(services: Services) -> uuid.UUID:
    return await make_site(services.db)


@pytest.fixture
async def api(services: Services, auth: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://nico.test", headers=auth
    ) as client:
        yield client


async def rules_of(api: httpx.AsyncClient, site_id: uuid.UUID) -> list[dict[str, Any]]:
    response = await api.get(f"{BASE}/task/rule", params={"siteId": str(site_id)})
    assert response.status_code == 200
    rules: list[dict[str, Any]] = response.json()
    return rules


async def run_import(
    api: httpx.AsyncClient, site_id: uuid.UUID | None, text: str, **kw: Any
) -> list[str]:
    options: dict[str, Any] = {"default": False, "dry_run": False, "filename": "rules.yaml"} | kw
    return await import_rules(
        api, org="demo", text=text, site=str(site_id) if site_id else None, **options
    )


async def test_upstream_yaml_imports_unchanged(api: httpx.AsyncClient, site_id: uuid.UUID) -> None:
    lines = await run_import(api, site_id, UPSTREAM_YAML)
    assert len(lines) == 3 and all(line.startswith("created ") for line in lines)
    rules = {r["name"]: r for r in await rules_of(api, site_id)}
    power_on = rules["Graceful Power On"]
    assert (power_on["operationType"], power_on["operationCode"]) == ("PowerControl", "power_on")
    assert power_on["isDefault"] is False
    first = power_on["ruleDefinition"]["steps"][0]
    assert first["componentType"] == "PowerShelf"
    assert first["retry"] == {"maxAttempts": 3, "initialInterval": "5s", "backoffCoefficient": 2}
    assert first["postOperation"][1]["parameters"]["component_types"] == ["Compute", "NVLSwitch"]
    legacy = rules["Legacy Power Off"]["ruleDefinition"]["steps"][0]
    assert legacy["mainOperation"] == {"name": "PowerControl"}
    assert legacy["delayAfter"] == "30s"
    assert rules["Default Firmware Upgrade"]["operationType"] == "FirmwareControl"


async def test_default_flag_makes_each_rule_its_operations_default(
    api: httpx.AsyncClient, site_id: uuid.UUID
) -> None:
    await run_import(api, site_id, UPSTREAM_YAML, default=True)
    assert all(r["isDefault"] for r in await rules_of(api, site_id))
    twice = UPSTREAM_YAML + UPSTREAM_YAML.split("rules:\n", 1)[1]
    with pytest.raises(CliError, match="would both be the default PowerControl/power_on"):
        await run_import(api, site_id, twice, default=True)


async def test_dry_run_and_invalid_files_write_nothing(
    api: httpx.AsyncClient, site_id: uuid.UUID
) -> None:
    lines = await run_import(api, site_id, UPSTREAM_YAML, dry_run=True)
    assert lines == [
        "would create Graceful Power On",
        "would create Default Firmware Upgrade",
        "would create Legacy Power Off",
        "3 rule(s) valid; nothing written (--dry-run)",
    ]
    broken = UPSTREAM_YAML.replace("duration: 30s", "duration: 30")
    with pytest.raises(CliError) as caught:
        await run_import(api, site_id, broken)
    message = str(caught.value)
    assert "rules[0] (Graceful Power On)" in message
    assert "postOperation[0].parameters.duration" in message
    assert await rules_of(api, site_id) == []
    with pytest.raises(CliError, match="not valid YAML"):
        await run_import(api, site_id, "rules: [")


@pytest.mark.parametrize(
    ("filename", "spelling", "shown"),
    [("rules.yaml", ".nan", "nan"), ("rules.yaml", "-.inf", "-inf"), ("rules.json", "NaN", "nan")],
)
async def test_nan_and_infinity_in_a_file_are_refused_by_path(
    api: httpx.AsyncClient, site_id: uuid.UUID, filename: str, spelling: str, shown: str
) -> None:
    text = UPSTREAM_YAML
    if filename.endswith(".json"):
        text = json.dumps(yaml.safe_load(UPSTREAM_YAML))
    old = '"backoff_coefficient": 2.0' if filename.endswith(".json") else "backoff_coefficient: 2.0"
    assert old in text
    broken = text.replace(old, old.replace("2.0", spelling))
    with pytest.raises(CliError) as caught:
        await run_import(api, site_id, broken, filename=filename)
    path = "rules[0].steps[0].retry.backoff_coefficient"
    assert str(caught.value) == f"{filename}: {path}: {shown} is not a finite number"
    assert await rules_of(api, site_id) == []


SECOND_RULE = '  - name: "Default Firmware Upgrade"\n'


@pytest.mark.parametrize(
    ("replacement", "problem"),
    [
        ("  - description: no name\n", "rules[1]: name: is required"),
        ('  - name: ""\n', "rules[1]: name: must be a non-empty string"),
        (f"  - name: {'x' * 129}\n", "name: must be at most 128 characters"),
        (SECOND_RULE + "    description: 5\n", "description: must be a string"),
        (SECOND_RULE + "    is_default: sometimes\n", "isDefault: must be true or false"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
async def test_every_field_post_checks_is_checked_before_anything_is_created(
    api: httpx.AsyncClient, site_id: uuid.UUID, replacement: str, problem: str, dry_run: bool
) -> None:
    # The first rule is fine; the second one would only fail at its own POST, after the
    # first had been created.
    assert SECOND_RULE in UPSTREAM_YAML
    broken = UPSTREAM_YAML.replace(SECOND_RULE, replacement)
    with pytest.raises(CliError) as caught:
        await run_import(api, site_id, broken, dry_run=dry_run)
    assert str(caught.value).startswith("nothing imported:")
    assert problem in str(caught.value)
    assert await rules_of(api, site_id) == []


@pytest.mark.parametrize("default", [True, False])
async def test_two_defaults_for_one_operation_are_found_whatever_the_spelling(
    api: httpx.AsyncClient, site_id: uuid.UUID, default: bool
) -> None:
    text = """\
rules:
  - name: first
    operationType: PowerControl
    operationCode: Power_On
    isDefault: true
    steps: [{componentType: Compute, stage: 1}]
  - name: second
    operation_type: power_control
    operation: " power_on"
    is_default: true
    steps: [{componentType: Compute, stage: 1}]
"""
    with pytest.raises(CliError, match="would both be the default PowerControl/power_on"):
        await run_import(api, site_id, text, default=default)
    assert await rules_of(api, site_id) == []


async def test_export_reads_back_into_another_site(
    api: httpx.AsyncClient, site_id: uuid.UUID, services: Services
) -> None:
    await run_import(api, site_id, UPSTREAM_YAML, default=True)
    for filename in ("rules.yaml", "rules.json"):
        exported = await export_rules(api, org="demo", site=str(site_id), filename=filename)
        target = await make_site(services.db, name=f"copy-{filename}")
        await run_import(api, target, exported, filename=filename)
        original = {r["name"]: r for r in await rules_of(api, site_id)}
        copied = {r["name"]: r for r in await rules_of(api, target)}
        assert set(copied) == set(original)
        for name, rule in copied.items():
            assert rule["ruleDefinition"] == original[name]["ruleDefinition"]
            assert rule["isDefault"] is True


async def test_site_is_picked_when_the_org_has_one(
    api: httpx.AsyncClient, services: Services
) -> None:
    only = await make_site(services.db)
    await run_import(api, None, UPSTREAM_YAML, dry_run=True)
    await make_site(services.db, name="second")
    with pytest.raises(CliError, match="pass --site"):
        await run_import(api, None, UPSTREAM_YAML, dry_run=True)
    assert only


# --- the real HTTP path -----------------------------------------------------------------


def test_cli_imports_and_exports_over_http(
    live_server: tuple[str, Services], make_token: Any, tmp_path: Path
) -> None:
    url, services = live_server
    site_id = run_blocking(make_site(services.db))
    rule_file = tmp_path / "upstream.yaml"
    rule_file.write_text(UPSTREAM_YAML)
    runner = CliRunner()
    env = {"NICO_TOKEN": make_token()}
    imported = runner.invoke(
        rules_cli.app,
        ["import", str(rule_file), "--api-url", url, "--site", str(site_id), "--default"],
        env=env,
    )
    assert imported.exit_code == 0, imported.output
    assert imported.output.count("(default)") == 3

    out = tmp_path / "export.yaml"
    exported = runner.invoke(
        rules_cli.app, ["export", "--api-url", url, "--site", str(site_id), "-o", str(out)], env=env
    )
    assert exported.exit_code == 0, exported.output
    names = sorted(r["name"] for r in yaml.safe_load(out.read_text())["rules"])
    assert names == ["Default Firmware Upgrade", "Graceful Power On", "Legacy Power Off"]

    denied = runner.invoke(
        rules_cli.app, ["export", "--api-url", url, "--site", str(site_id)], env={"NICO_TOKEN": "x"}
    )
    assert denied.exit_code == 1 and "HTTP 401" in denied.output


# --- idempotent re-import (issue 13 finding 7) ------------------------------------------


async def test_importing_an_export_changes_nothing(
    api: httpx.AsyncClient, site_id: uuid.UUID
) -> None:
    await run_import(api, site_id, UPSTREAM_YAML)
    before = await rules_of(api, site_id)
    exported = await export_rules(api, org="demo", site=str(site_id), filename="rules.yaml")
    planned = await run_import(api, site_id, exported, dry_run=True)
    assert planned[:3] == [f"unchanged {r['id']} {r['name']}" for r in _in_file_order(before)]
    lines = await run_import(api, site_id, exported)
    assert all(line.startswith("unchanged ") for line in lines)
    assert await rules_of(api, site_id) == before


async def test_reimport_updates_what_changed_and_defaults_only_where_the_file_says(
    api: httpx.AsyncClient, site_id: uuid.UUID
) -> None:
    await run_import(api, site_id, UPSTREAM_YAML)
    before = {r["name"]: r for r in await rules_of(api, site_id)}
    data = yaml.safe_load(await export_rules(api, org="demo", site=str(site_id), filename=None))
    edited = {r["name"]: r for r in data["rules"]}
    edited["Legacy Power Off"]["ruleDefinition"]["steps"][0]["maxParallel"] = 2
    edited["Default Firmware Upgrade"]["isDefault"] = True
    data["rules"].append(
        {
            "name": "New One",
            "operationType": "PowerControl",
            "operationCode": "restart",
            "ruleDefinition": {
                "version": "v1",
                "steps": [{"componentType": "Compute", "stage": 1}],
            },
        }
    )
    text = yaml.safe_dump(data)
    legacy, firmware = before["Legacy Power Off"]["id"], before["Default Firmware Upgrade"]["id"]
    assert sorted(await run_import(api, site_id, text, dry_run=True)) == sorted(
        [
            f"unchanged {before['Graceful Power On']['id']} Graceful Power On",
            f"would update {legacy} Legacy Power Off (ruleDefinition)",
            f"would update {firmware} Default Firmware Upgrade (made default)",
            "would create New One",
            "4 rule(s) valid; nothing written (--dry-run)",
        ]
    )
    assert {r["name"]: r for r in await rules_of(api, site_id)} == before

    await run_import(api, site_id, text)
    after = {r["name"]: r for r in await rules_of(api, site_id)}
    assert set(after) == {*before, "New One"}
    assert after["Legacy Power Off"]["id"] == legacy
    assert after["Legacy Power Off"]["ruleDefinition"]["steps"][0]["maxParallel"] == 2
    assert after["Default Firmware Upgrade"]["isDefault"] is True
    assert [n for n, r in after.items() if r["isDefault"]] == ["Default Firmware Upgrade"]
    # Again: nothing left to do.
    assert all(line.startswith("unchanged ") for line in await run_import(api, site_id, text))


async def test_a_name_of_another_operation_is_refused(
    api: httpx.AsyncClient, site_id: uuid.UUID
) -> None:
    await run_import(api, site_id, UPSTREAM_YAML)
    clash = UPSTREAM_YAML.replace("operation: power_off", "operation: restart")
    with pytest.raises(CliError, match="an operation cannot change"):
        await run_import(api, site_id, clash)


def _in_file_order(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order export writes rules in."""
    return sorted(
        rules, key=lambda r: (r["operationType"], r["operationCode"], r["created"], r["id"])
    )


async def test_exporting_and_reimporting_the_built_in_defaults_duplicates_nothing(
    api: httpx.AsyncClient, site_id: uuid.UUID, services: Services
) -> None:
    from nico.rules.install import install_builtin_defaults

    async with services.db.session() as session:
        await install_builtin_defaults(session, site_id)
    before = await rules_of(api, site_id)
    assert len(before) == 14 and all(r["isDefault"] for r in before)
    exported = await export_rules(api, org="demo", site=str(site_id), filename="rules.json")
    lines = await run_import(api, site_id, exported, filename="rules.json")
    assert len(lines) == 14 and all(line.startswith("unchanged ") for line in lines)
    assert await rules_of(api, site_id) == before
