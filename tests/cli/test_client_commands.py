"""Every client command against a live server over HTTP, run as the real `nico`
executable: names resolved, tables and JSON, every page, exit codes, one-line errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from tests.cli.support import Cli, served_cli
from tests.rules.support import make_site
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import load_task

pytestmark = pytest.mark.temporal


@pytest.fixture
async def nico(
    temporal_dev_env: WorkflowEnvironment, services: Services, make_token: Any, tmp_path: Path
) -> AsyncIterator[Cli]:
    rack = await make_site_with_rack(services, site_name="lab-1")
    async with served_cli(services, temporal_dev_env, make_token(), rack, tmp_path) as cli:
        yield cli


async def test_inventory_by_name_as_tables_and_json(nico: Cli) -> None:
    sites = await nico.ok("site", "list")
    assert sites.out.split("\n")[0].split() == ["ID", "NAME", "FLOW", "DESCRIPTION"]
    assert "lab-1" in sites.out
    [site] = (await nico.ok("site", "list", "-o", "json")).json()
    shown = await nico.ok("site", "show", "lab-1")
    assert "ID:" in shown.out and site["id"] in shown.out

    racks = await nico.ok("rack", "list")
    assert "rack-01" in racks.out
    rack = await nico.ok("rack", "show", "rack-01")
    assert "18 Compute" in rack.out and "9 NVLSwitch" in rack.out and "8 PowerShelf" in rack.out

    trays = (
        await nico.ok("tray", "list", "--rack", "rack-01", "--type", "Compute", "-o", "json")
    ).json()
    assert len(trays) == 18 and {t["type"] for t in trays} == {"Compute"}
    table = await nico.ok("tray", "list")
    assert len(table.out.strip().splitlines()) == 1 + 35
    tray = await nico.ok("tray", "show", "rack-01/compute-07", "-o", "yaml")
    assert "name: compute-07" in tray.out
    by_id = await nico.ok("tray", "show", trays[0]["id"])
    assert trays[0]["name"] in by_id.out


async def test_lists_read_every_page(nico: Cli, services: Services) -> None:
    # 21 sites: the API's default page holds 20.
    for number in range(20):
        await make_site(services.db, name=f"extra-{number:02d}")
    sites = (await nico.ok("site", "list", "-o", "json")).json()
    assert len(sites) == 21
    # With several sites, --site is needed and takes a name.
    refused = await nico("rack", "list")
    assert refused.code == 1 and "the org has 21 sites" in refused.err
    assert "rack-01" in (await nico.ok("rack", "list", "--site", "lab-1")).out


async def test_power_on_wait_then_task_list_show(nico: Cli) -> None:
    ran = await nico("rack", "power", "rack-01", "on", "--wait", "--description", "cli power on")
    assert ran.code == 0, ran
    assert "Succeeded" in ran.out and "35/35 components" in ran.out
    tasks = (await nico.ok("task", "list", "-o", "json")).json()
    assert [t["description"] for t in tasks] == ["cli power on"]
    assert tasks[0]["status"] == "Succeeded"
    listed = await nico.ok("task", "list", "--rack", "rack-01", "--status", "Succeeded")
    assert tasks[0]["id"] in listed.out
    assert tasks[0]["id"] not in (await nico.ok("task", "list", "--active")).out
    shown = await nico.ok("task", "show", tasks[0]["id"])
    assert "Compute 18/18" in shown.out and "PowerShelf" in shown.out
    by_tray = await nico.ok("task", "list", "--tray", "rack-01/compute-07", "-o", "json")
    assert [t["id"] for t in by_tray.json()] == [tasks[0]["id"]]

    # Without --wait: the task ids, one a line; a tray by RACK/TRAY.
    started = await nico.ok("tray", "power", "rack-01/compute-07", "off", "--idempotency-key", "k1")
    [task_id] = started.out.split()
    again = await nico.ok("tray", "power", "rack-01/compute-07", "off", "--idempotency-key", "k1")
    assert again.out.split() == [task_id]
    assert (await nico("task", "watch", task_id)).code == 0


async def test_failures_are_one_line_and_exit_1_usage_errors_exit_2(nico: Cli) -> None:
    unknown = await nico("rack", "power", "rack-99", "on")
    assert (unknown.code, unknown.out) == (1, "")
    assert unknown.err == "error: no rack 'rack-99' in site " + unknown.err.split(" in site ")[1]
    assert unknown.err.count("\n") == 1 and "rack-01" in unknown.err

    denied = await nico("task", "list", NICO_TOKEN="not-a-token")
    assert denied.code == 1
    assert denied.err == "error: HTTP 401: Error parsing the token claims\n"

    down = await nico("site", "list", NICO_API_URL="http://127.0.0.1:9")
    assert down.code == 1 and down.err.startswith("error: cannot reach the API")

    missing = await nico("task", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.code == 1 and "HTTP 404" in missing.err

    for usage in (
        ["bogus"],
        ["rack", "power", "rack-01"],
        ["rack", "power", "rack-01", "sideways"],
        ["rack", "power", "on"],
        ["task", "list", "--bogus"],
        ["token", "--ttl", "soon"],
        ["rule", "import"],
    ):
        ran = await nico(*usage)
        assert ran.code == 2, (usage, ran)
        assert "Traceback" not in ran.err and "Usage: nico" in ran.err, (usage, ran)
    bare = await nico()
    assert bare.code in (0, 2) and "Traceback" not in bare.err
    assert "rack" in bare.out + bare.err


async def test_cancel_a_running_task(nico: Cli) -> None:
    rule = await nico.live.create_rule(
        {
            "name": "slow on",
            "operationType": "PowerControl",
            "operationCode": "power_on",
            "ruleDefinition": {
                "version": "v1",
                "steps": [
                    {
                        "componentType": "PowerShelf",
                        "stage": 1,
                        "mainOperation": {"name": "Sleep", "parameters": {"duration": "5m"}},
                    }
                ],
            },
        }
    )
    started = await nico.ok("rack", "power", "rack-01", "on", "--rule", "slow on")
    [task_id] = started.out.split()
    await nico.live.until(task_id, "Running")
    cancelled = await nico.ok("task", "cancel", task_id)
    assert cancelled.out.startswith(f"task {task_id}: Terminated")
    assert (await nico("task", "watch", task_id)).code == 2
    assert rule


RULE_FILE = """\
rules:
  - name: compute off
    operationType: PowerControl
    operationCode: power_off
    ruleDefinition:
      version: v1
      steps: [{componentType: Compute, stage: 1, mainOperation: {name: PowerControl}}]
"""


async def test_rule_commands_by_name(nico: Cli, tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(RULE_FILE)
    valid = await nico.ok("rule", "validate", str(rule_file))
    assert valid.out.splitlines() == [
        "1 rule(s) valid; `nico rule import` would:",
        "  create compute off",
    ]
    assert (await nico.ok("rule", "import", str(rule_file))).out.startswith("created ")
    assert (await nico.ok("rule", "import", str(rule_file))).out.startswith("unchanged ")
    [rule] = [
        r
        for r in (await nico.ok("rule", "list", "-o", "json")).json()
        if r["name"] == "compute off"
    ]
    shown = await nico.ok("rule", "show", "compute off")
    assert rule["id"] in shown.out and "definition:" in shown.out
    made = await nico.ok("rule", "set-default", "compute off")
    assert made.out == f"{rule['id']} compute off is the default PowerControl/power_off rule\n"
    assert "compute off" in (await nico.ok("rule", "list", "--default")).out
    refused = await nico("rule", "delete", "compute off")
    assert refused.code == 1 and refused.err.startswith("error: HTTP 409")
    assert (await nico.ok("rule", "delete", "compute off", "--force")).out == (
        f"deleted rule {rule['id']}\n"
    )
    gone = await nico("rule", "show", "compute off")
    assert gone.code == 1 and "no rule named 'compute off'" in gone.err


async def test_firmware_and_bringup_start_tasks_by_rack_name(
    nico: Cli, real_engine_waits: None
) -> None:
    firmware = await nico.ok("rack", "firmware", "rack-01", "--version", "2.0.0", "-o", "json")
    [firmware_task] = firmware.json()["taskIds"]
    queued = await nico.ok("rack", "bringup", "rack-01", "--queue", "--queue-timeout", "30m")
    [bringup_task] = queued.out.split()
    active = {t["id"]: t for t in (await nico.ok("task", "list", "--active", "-o", "json")).json()}
    assert firmware_task in active
    assert active[bringup_task]["status"] == "Waiting"
    for task_id in (bringup_task, firmware_task):
        assert (await nico.ok("task", "cancel", task_id)).out.startswith(f"task {task_id}: ")


async def test_firmware_override_version_check_and_an_unlisted_version(
    nico: Cli, services: Services
) -> None:
    started = await nico.ok(
        "tray",
        "firmware",
        "rack-01/compute-01",
        "--version",
        "1.0.0",
        "--override-version-check",
        "-o",
        "json",
    )
    [task_id] = started.json()["taskIds"]
    task = await load_task(services, task_id)
    assert task.information == {"version": "1.0.0", "overrideVersionCheck": True}

    refused = await nico("rack", "firmware", "rack-01", "--version", "9.9.9")
    assert refused.code == 1
    assert "9.9.9 is not in the site's firmware catalog for Compute" in refused.err
