"""A BMC that redirects elsewhere never gets our credentials sent to the other host."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nico.config import Settings
from nico.hardware.interface import BmcEndpoint, HardwareError
from nico.hardware.redfish.client import RedfishClient

TOKEN = "session-token-" + "t" * 24
PASSWORD = "bmc-password-" + "p" * 12


@dataclass
class Seen:
    """What one server received: (method, path, headers, body) per request."""

    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)

    def secrets(self) -> list[str]:
        leaked: list[str] = []
        for _, _, headers, body in self.requests:
            lowered = {k.lower() for k in headers}
            leaked += [h for h in ("x-auth-token", "authorization") if h in lowered]
            if PASSWORD in body:
                leaked.append("password in body")
        return leaked


@dataclass
class Server:
    url: str
    seen: Seen
    routes: dict[tuple[str, str], tuple[int, dict[str, str], Any]]


@pytest.fixture
def start_server() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> Server:
        seen = Seen()
        routes: dict[tuple[str, str], tuple[int, dict[str, str], Any]] = {}

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                seen.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = routes.get(
                    (self.command, self.path), (404, {}, {"error": "not here"})
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Server(f"http://127.0.0.1:{server.server_address[1]}", seen, routes)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client_for(bmc: Server) -> RedfishClient:
    endpoint = BmcEndpoint(address=bmc.url, username="admin", password=PASSWORD)
    return RedfishClient(endpoint, Settings(redfish_timeout=5.0))


SYSTEMS = "/redfish/v1/Systems"
SESSIONS = "/redfish/v1/SessionService/Sessions"


def redirect(to: str) -> tuple[int, dict[str, str], Any]:
    return (307, {"Location": to}, {})


async def test_a_session_token_is_not_sent_to_another_origin(start_server: Any) -> None:
    bmc, elsewhere = start_server(), start_server()
    bmc.routes[("GET", "/redfish/v1/")] = (
        200,
        {},
        {"Links": {"Sessions": {"@odata.id": SESSIONS}}},
    )
    bmc.routes[("POST", SESSIONS)] = (201, {"X-Auth-Token": TOKEN}, {})
    bmc.routes[("GET", SYSTEMS)] = redirect(elsewhere.url + SYSTEMS)
    elsewhere.routes[("GET", SYSTEMS)] = (200, {}, {"Members": []})
    client = client_for(bmc)
    try:
        with pytest.raises(HardwareError) as refused:
            await client.get_json(SYSTEMS)
    finally:
        await client.aclose()

    assert elsewhere.seen.secrets() == []
    assert refused.value.retryable is False
    assert "redirected" in str(refused.value) and elsewhere.url in str(refused.value)
    assert TOKEN not in str(refused.value)


async def test_basic_credentials_are_not_sent_to_another_origin(start_server: Any) -> None:
    bmc, elsewhere = start_server(), start_server()
    bmc.routes[("GET", "/redfish/v1/")] = (200, {}, {})  # no sessions: basic auth
    bmc.routes[("GET", SYSTEMS)] = redirect(elsewhere.url + SYSTEMS)
    elsewhere.routes[("GET", SYSTEMS)] = (200, {}, {"Members": []})
    client = client_for(bmc)
    try:
        with pytest.raises(HardwareError):
            await client.get_json(SYSTEMS)
    finally:
        await client.aclose()

    assert elsewhere.seen.secrets() == []


async def test_a_login_is_not_replayed_to_another_origin(start_server: Any) -> None:
    """A 307 keeps the body: the session login would carry the password along."""
    bmc, elsewhere = start_server(), start_server()
    bmc.routes[("GET", "/redfish/v1/")] = (
        200,
        {},
        {"Links": {"Sessions": {"@odata.id": SESSIONS}}},
    )
    bmc.routes[("POST", SESSIONS)] = redirect(elsewhere.url + SESSIONS)
    elsewhere.routes[("POST", SESSIONS)] = (201, {"X-Auth-Token": TOKEN}, {})
    client = client_for(bmc)
    try:
        with pytest.raises(HardwareError):
            await client.get_json(SYSTEMS)
    finally:
        await client.aclose()

    assert elsewhere.seen.secrets() == []


async def test_a_redirect_within_the_bmc_is_followed_with_credentials(start_server: Any) -> None:
    bmc = start_server()
    bmc.routes[("GET", "/redfish/v1/")] = (
        200,
        {},
        {"Links": {"Sessions": {"@odata.id": SESSIONS}}},
    )
    bmc.routes[("POST", SESSIONS)] = (201, {"X-Auth-Token": TOKEN}, {})
    bmc.routes[("GET", SYSTEMS)] = redirect(SYSTEMS + "/")
    bmc.routes[("GET", SYSTEMS + "/")] = (200, {}, {"Members": []})
    client = client_for(bmc)
    try:
        assert await client.get_json(SYSTEMS) == {"Members": []}
    finally:
        await client.aclose()

    followed = [r for r in bmc.seen.requests if r[1] == SYSTEMS + "/"]
    assert followed and followed[0][2].get("X-Auth-Token") == TOKEN
