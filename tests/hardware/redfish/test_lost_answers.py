"""A reset whose answer never comes back: a cycle is not sent again, on/off may be.

sushy-tools cannot delay one request and answer the others, so these tests run a
minimal Redfish service of their own (real HTTP on 127.0.0.1): it answers reads of one
system and accepts reset requests without ever answering them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nico.config import Settings
from nico.hardware.interface import BmcEndpoint, HardwareError
from nico.hardware.redfish.backend import RedfishBackend
from nico.hardware.redfish.errors import AnswerLost, ResetOutcomeUnknown
from tests.hardware.redfish.conftest import key, tray

pytestmark = pytest.mark.redfish

SYSTEM = "/redfish/v1/Systems/1"
RESET = f"{SYSTEM}/Actions/ComputerSystem.Reset"


class SilentResetBmc:
    """Answers GET of the system (On, its Reset action); never answers a reset POST."""

    def __init__(self) -> None:
        self.resets: list[str] = []
        self._server: asyncio.Server | None = None
        self._hanging: list[asyncio.Event] = []

    @property
    def address(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        for event in self._hanging:
            event.set()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                length = 0
                for line in head.decode().split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if method == "POST" and path == RESET:
                    self.resets.append(json.loads(body)["ResetType"])
                    hang = asyncio.Event()
                    self._hanging.append(hang)
                    await hang.wait()  # the BMC acts (or not); the answer is lost
                    return
                payload = json.dumps(self._resource(path)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _resource(path: str) -> dict[str, object]:
        return {
            "@odata.id": SYSTEM,
            "PowerState": "On",
            "Actions": {
                "#ComputerSystem.Reset": {
                    "target": RESET,
                    "ResetType@Redfish.AllowableValues": [
                        "On",
                        "ForceOff",
                        "GracefulShutdown",
                        "ForceRestart",
                    ],
                }
            },
        }


@pytest.fixture
async def bmc() -> AsyncIterator[SilentResetBmc]:
    server = SilentResetBmc()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def impatient(tmp_path: Path) -> AsyncIterator[RedfishBackend]:
    backend = RedfishBackend(Settings(data_dir=tmp_path / "nico", redfish_timeout=0.5))
    yield backend
    await backend.aclose()


async def test_a_cycle_whose_answer_is_lost_is_not_sent_again(
    bmc: SilentResetBmc, impatient: RedfishBackend
) -> None:
    target = tray(BmcEndpoint(address=bmc.address, resource_id="1"))
    with pytest.raises(ResetOutcomeUnknown) as lost:
        await impatient.power_control(target, "force_restart", operation_key=key())
    assert not isinstance(lost.value, HardwareError)  # the engine keeps its intent
    assert "ForceRestart: it may have been carried out, so it is not sent again" in str(lost.value)
    assert bmc.resets == ["ForceRestart"]


async def test_an_off_whose_answer_is_lost_may_be_retried(
    bmc: SilentResetBmc, impatient: RedfishBackend
) -> None:
    target = tray(BmcEndpoint(address=bmc.address, resource_id="1"))
    with pytest.raises(AnswerLost) as lost:
        await impatient.power_control(target, "power_off", operation_key=key())
    assert lost.value.retryable
    assert bmc.resets == ["GracefulShutdown"]
