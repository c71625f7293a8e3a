"""`nico rack power … --wait` (= `nico task watch`) in a real terminal: tmux runs the real
executable against a live server whose worker runs on the real-time Temporal dev server,
and the test reads the screen as the task advances: stage by stage, the progress bar,
counts per type, the failed tray named, the exit code."""

from __future__ import annotations

import asyncio
import shlex
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from tests.cli.support import NICO, Cli, served_cli
from tests.support.inventory import make_site_with_rack

pytestmark = [
    pytest.mark.temporal,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def stage(component: str, number: int, settle: str) -> dict[str, Any]:
    """Power the type, then wait `settle` (so the screen can show each stage running)."""
    return {
        "componentType": component,
        "stage": number,
        "retry": {"maxAttempts": 1, "initialInterval": "1s", "backoffCoefficient": 1.0},
        "mainOperation": {"name": "PowerControl"},
        "postOperation": [{"name": "Sleep", "parameters": {"duration": settle}}],
    }


DRILL_RULE = {
    "name": "drill on",
    "operationType": "PowerControl",
    "operationCode": "power_on",
    "ruleDefinition": {
        "version": "v1",
        "steps": [
            stage("PowerShelf", 1, "3s"),
            stage("NVLSwitch", 2, "3s"),
            stage("Compute", 3, "1s"),
        ],
    },
}


class Terminal:
    """One tmux session on a private socket (a file of the test's), 120x45."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def tmux(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-S", str(self.socket), *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        return out.decode()

    async def start(self, command: str) -> None:
        await self.tmux("new-session", "-d", "-x", "120", "-y", "45", "-s", "t", command)

    async def screen(self) -> str:
        return await self.tmux("capture-pane", "-p", "-t", "t")

    async def close(self) -> None:
        await self.tmux("kill-server")


@pytest.fixture
async def nico(
    temporal_dev_env: WorkflowEnvironment, services: Services, make_token: Any, tmp_path: Path
) -> AsyncIterator[Cli]:
    rack = await make_site_with_rack(services)
    async with served_cli(services, temporal_dev_env, make_token(), rack, tmp_path) as cli:
        yield cli


async def test_wait_shows_stages_advance_and_names_the_failed_tray(
    nico: Cli, tmp_path: Path, real_engine_waits: None
) -> None:
    live = nico.live
    await live.create_rule(DRILL_RULE)
    fault = await live.http.post(
        "/v2/org/demo/nico/simulator/fault",
        json=live.site | {"trayIds": [live.tray_id("compute-07")], "fault": "unreachable"},
    )
    assert fault.status_code == 201, fault.text
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in nico.env.items() if k != "COLUMNS")
    command = (
        f"env TERM=xterm-256color {env} {NICO} rack power rack-01 on --rule 'drill on' --wait;"
        " echo EXIT=$?; sleep 120"
    )
    terminal = Terminal(tmp_path / "tmux.sock")
    await terminal.start(command)
    screens: list[str] = []
    try:
        for _ in range(600):
            screen = await terminal.screen()
            if not screens or screen != screens[-1]:
                screens.append(screen)
            if "EXIT=" in screen:
                break
            await asyncio.sleep(0.1)
    finally:
        await terminal.close()
    (tmp_path / "screens.txt").write_text("\n----\n".join(screens))
    final = " ".join(screens[-1].split())  # lines the terminal wrapped, joined

    def seen(*needles: str) -> list[str]:
        return [s for s in screens if all(n in s for n in needles)]

    # While it ran: stage 1 running before stage 2 ran, stage 2 running with stage 1 done.
    assert seen("Running", "1 running", "PowerShelf"), screens
    assert seen("Running", "1 completed", "2 running"), screens
    assert seen("PowerShelf 8/8", "NVLSwitch 0/9", "2 running"), screens
    assert seen("Compute 0/18", "3 running", "17/35 components"), screens
    # The failure is named, then the end: 34 of 35 trays, Failed, exit 1.
    assert "✗ failed" in final and "compute-07: BMC unreachable (injected fault)" in final
    assert "34/35 components done, 1 failed" in final
    assert "Compute 17/18 (1 failed)" in final
    assert "Failed: Stage 3 failed: 1 of 18 Compute failed: compute-07" in final
    assert "3 failed Compute failed 17 1 18" in final
    assert "EXIT=1" in final
    assert "━" in final  # the progress bar
    print(screens[-1])
