"""`nico rack|tray status` and `nico rack|tray history` against a live server, run as the
real `nico`: names, one table, JSON/YAML, exit codes and one-line errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from nico.cli.status import age
from nico.services import Services
from tests.cli.support import Cli, served_cli
from tests.support.inventory import make_site_with_rack

pytestmark = pytest.mark.temporal


@pytest.fixture
async def nico(
    temporal_dev_env: WorkflowEnvironment, services: Services, make_token: Any, tmp_path: Path
) -> AsyncIterator[Cli]:
    rack = await make_site_with_rack(services, site_name="lab-1")
    async with served_cli(services, temporal_dev_env, make_token(), rack, tmp_path) as cli:
        yield cli


def _row(out: str, tray: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(tray + " "))


async def test_rack_status_shows_power_firmware_and_tasks_per_tray(nico: Cli) -> None:
    before = await nico.ok("rack", "status", "rack-01")
    assert before.out.startswith("rack rack-01  power ")
    header = before.out.splitlines()[1].split()
    assert header == [
        "TRAY", "TYPE", "POWER", "OBSERVED", "DESIRED", "FIRMWARE", "TARGET", "COMPLIANCE",
        "TASKS", "ERROR",
    ]  # fmt: skip
    assert "no active tasks" in before.out
    # Never read: no version a BMC confirmed (not the import's 1.0.0), compliance unknown.
    # TRAY TYPE POWER OBSERVED DESIRED FIRMWARE TARGET COMPLIANCE
    assert _row(before.out, "compute-07")[2:8] == ["Unknown", "-", "-", "-", "2.1", "unknown"]

    ran = await nico("rack", "power", "rack-01", "On", "--wait")
    assert ran.code == 0, ran
    after = await nico.ok("rack", "status", "rack-01")
    assert "power On (35 on, 0 off, 0 changing, 0 unknown of 35)" in after.out
    row = _row(after.out, "compute-07")
    # Read by the task moments ago, and its last power task asked for On.
    assert row[1:3] == ["Compute", "On"] and row[3].endswith("s") and row[5] == "On"

    status = (await nico.ok("rack", "status", "rack-01", "-o", "json")).json()
    assert set(status) == {"power", "firmware", "tasks"}
    assert status["power"]["name"] == "rack-01" and len(status["power"]["components"]) == 35
    assert len(status["firmware"]["components"]) == 35 and status["tasks"] == []
    firmware = next(t for t in status["firmware"]["components"] if t["name"] == "compute-07")
    # TRAY TYPE POWER "Ns ago" DESIRED FIRMWARE TARGET COMPLIANCE
    assert row[6:9] == [
        str(firmware["version"] if firmware["observedAt"] else "-"),
        str(firmware["targetVersion"] or "-"),
        firmware["compliance"],
    ]
    assert "rack-01" in (await nico.ok("rack", "status", "rack-01", "-o", "yaml")).out


async def test_tray_status_and_history_by_name(nico: Cli) -> None:
    # The shelves are off: powering one compute tray fails, and its history says why.
    failed = await nico("tray", "power", "rack-01/compute-07", "On", "--wait")
    assert failed.code == 1, failed
    ran = await nico("rack", "power", "rack-01", "On", "--wait")
    assert ran.code == 0, ran

    shown = await nico.ok("tray", "status", "rack-01/compute-07")
    lines = dict(line.split(":", 1) for line in shown.out.splitlines() if ":" in line)
    assert lines["TRAY"].strip() == "compute-07" and lines["POWER"].strip() == "On"
    assert lines["DESIRED"].strip() == "On"
    assert "no active tasks" in shown.out

    history = await nico.ok("tray", "history", "rack-01/compute-07")
    assert history.out.splitlines()[0].split()[:6] == [
        "AT",
        "TRAY",
        "KIND",
        "COMPONENT",
        "FROM",
        "TO",
    ]
    step = next(line for line in history.out.splitlines() if "Succeeded" in line)
    assert "compute-07" in step and "power" in step and "power_on" in step
    failure = next(line for line in history.out.splitlines() if " Failed " in line)
    assert "BMC unreachable: no PowerShelf of the rack is on" in failure
    rows = (await nico.ok("rack", "history", "rack-01", "--kind", "power", "-o", "json")).json()
    assert rows and {r["kind"] for r in rows} == {"power"}
    assert any(r["trayName"] == "compute-07" and r["outcome"] == "Succeeded" for r in rows)
    assert (
        len((await nico.ok("rack", "history", "rack-01", "--limit", "2", "-o", "json")).json()) == 2
    )


async def test_status_errors_are_one_line_exit_1_and_usage_exit_2(nico: Cli) -> None:
    unknown = await nico("rack", "status", "rack-99")
    assert (unknown.code, unknown.out) == (1, "")
    assert (
        unknown.err.startswith("error: no rack 'rack-99' in site ") and unknown.err.count("\n") == 1
    )
    tray = await nico("tray", "status", "rack-01/nope")
    assert tray.code == 1 and tray.err == "error: no tray named 'nope' in rack rack-01\n"
    bad_kind = await nico("rack", "history", "rack-01", "--kind", "voltage")
    assert bad_kind.code == 1
    assert bad_kind.err == (
        "error: HTTP 400: Failed to validate request data: kind: must be one of [power firmware]\n"
    )
    usage = await nico("rack", "status")
    assert usage.code == 2 and "Missing argument" in usage.err


def test_ages_read_like_a_person_would_say_them() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    ago = {
        s: (now - timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
        for s in (5, 420, 7200, 200000)
    }
    assert [age(stamp, now) for stamp in ago.values()] == ["5s ago", "7m ago", "2h ago", "2d ago"]
    assert age(None) == "-"


def test_a_failed_read_shows_unknown_with_the_last_good_value_and_the_error() -> None:
    from nico.cli.status import _status_rows

    ago = (datetime.now(UTC) - timedelta(minutes=7)).isoformat().replace("+00:00", "Z")
    power = {
        "components": [
            {
                "id": "t1",
                "name": "compute-03",
                "type": "Compute",
                "actual": {
                    "state": "Unknown",
                    "observedAt": ago,
                    "error": "BMC unreachable",
                    "lastGood": {"state": "On", "observedAt": ago},
                },
                "desired": {"state": "On"},
                "tasks": [{"requested": "ACPowerCycle", "status": "Running"}],
            }
        ]
    }
    firmware = {
        "components": [
            {
                "id": "t1",
                "version": "1.0.0",
                "observedAt": ago,
                "targetVersion": "1.1.0",
                "compliance": "outdated",
                "tasks": [{"operationCode": "upgrade", "version": "1.1.0", "status": "Waiting"}],
            }
        ]
    }
    [row] = _status_rows(power, firmware)
    assert row["power"] == "Unknown (last On 7m ago)" and row["error"] == "BMC unreachable"
    assert (row["firmware"], row["target"], row["compliance"]) == ("1.0.0", "1.1.0", "outdated")
    assert row["tasks"] == "ACPowerCycle Running, upgrade 1.1.0 Waiting"
    # Judged on an old read because the last one failed: the table says so.
    firmware["components"][0] |= {"stale": True, "error": "BMC unreachable"}
    [row] = _status_rows(power, firmware)
    assert row["compliance"] == "outdated (stale)"


def test_a_never_read_tray_shows_no_firmware_version() -> None:
    """The import's version is no observation: the table says `-`, as the power column
    says `Unknown`, and compliance stays unknown."""
    from nico.cli.output import text
    from nico.cli.status import _status_rows

    power = {
        "components": [
            {
                "id": "t1",
                "name": "compute-03",
                "type": "Compute",
                "actual": {"state": "Unknown", "observedAt": None, "error": None},
                "desired": {"state": None},
                "tasks": [],
            }
        ]
    }
    firmware = {
        "components": [
            {
                "id": "t1",
                "version": "1.0.0",  # what the rack import said
                "observedAt": None,
                "targetVersion": "1.1.0",
                "compliance": "unknown",
                "tasks": [],
            }
        ]
    }
    [row] = _status_rows(power, firmware)
    shown = [text(row[k]) for k in ("power", "observed", "firmware", "target", "compliance")]
    assert shown == ["Unknown", "-", "-", "1.1.0", "unknown"]
