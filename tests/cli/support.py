"""Run the real `nico` executable as a user would, against a server in the test's loop
(so the subprocess is awaited, never blocked on)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from nico.services import Services
from tests.support.inventory import MadeRack
from tests.support.live import Live, live_api

NICO = str(Path(sys.executable).parent / "nico")


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """`nico …` with NICO_API_URL and NICO_TOKEN set for one live server."""

    env: dict[str, str]
    live: Live

    async def __call__(self, *args: str, **env: str) -> Ran:
        process = await asyncio.create_subprocess_exec(
            NICO,
            *args,
            env=os.environ | self.env | env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str) -> Ran:
        ran = await self(*args)
        assert ran.code == 0, ran
        assert ran.err == "", ran
        return ran


@asynccontextmanager
async def served_cli(
    services: Services, env: WorkflowEnvironment, token: str, rack: MadeRack, home: Path
) -> AsyncIterator[Cli]:
    """The real API and a worker on `env`, and a `nico` pointed at them."""
    auth = {"Authorization": f"Bearer {token}"}
    async with live_api(services, env, auth, rack) as live:
        variables = {
            "NICO_API_URL": str(live.http.base_url).rstrip("/"),
            "NICO_TOKEN": token,
            "XDG_DATA_HOME": str(home),
            "COLUMNS": "200",
        }
        yield Cli(variables, live)
