"""What every `nico` command that talks to the API shares: where the API is, the token,
the site, the NICo error text, and how a failure ends the command (message, exit 1).

Client commands must start fast, so nothing here imports the server (FastAPI, SQLAlchemy,
Temporal) or even `nico.config` (pydantic-settings alone costs a fifth of a second): the
few settings a client needs are read from the environment with the server's defaults
(`tests/cli/test_startup.py` keeps them equal).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    import httpx

# The server's defaults for the settings a client reads (nico.config.Settings).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8388
DEFAULT_API_NAME = "nico"
DEFAULT_ORG = "demo"
# `--api-url` given nowhere: derived from NICO_HOST / NICO_PORT (see `api_url`).
DEFAULT_API_URL: str | None = None
PAGE_SIZE = 100

T = TypeVar("T")


class CliError(Exception):
    """A failure to report to the user (no traceback)."""


def default_api_url() -> str:
    """`http://NICO_HOST:NICO_PORT`, as `nico serve` listens with the same environment
    (a wildcard listen address is reached on loopback)."""
    host = os.environ.get("NICO_HOST") or DEFAULT_HOST
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = os.environ.get("NICO_PORT") or str(DEFAULT_PORT)
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class ApiTarget:
    api_url: str
    org: str
    token: str

    def client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30.0,
        )

    @property
    def base(self) -> str:
        return base_path(self.org)


def base_path(org: str) -> str:
    """The org's API root, with the same NICO_API_NAME the server uses."""
    api_name = os.environ.get("NICO_API_NAME") or DEFAULT_API_NAME
    return f"/v2/org/{org}/{api_name}"


def error_message(response: httpx.Response) -> str:
    """`HTTP 404: <the NICo message>` (or the start of a non-NICo body)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and "message" in body:
        return f"HTTP {response.status_code}: {body['message']}"
    return f"HTTP {response.status_code}"


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def pick_site(client: httpx.AsyncClient, org: str, site: str | None) -> str:
    """The site's id: the one given (an id, or a name of the org's sites), else the org's
    only site."""
    if site and is_uuid(site):
        return site
    sites = await get_all(client, f"{base_path(org)}/site", {})
    if site:
        found = [s for s in sites if s.get("name") == site]
        if not found:
            known = ", ".join(str(s.get("name")) for s in sites) or "none"
            raise CliError(f"no site named {site!r} in org {org} (sites: {known})")
        return str(found[0]["id"])
    if len(sites) != 1:
        names = ", ".join(f"{s.get('name')} ({s.get('id')})" for s in sites) or "none"
        raise CliError(f"the org has {len(sites)} sites ({names}); pass --site NAME|ID")
    return str(sites[0]["id"])


async def get_all(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every item of a paged list endpoint, page after page."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(
            path, params=params | {"pageNumber": page, "pageSize": PAGE_SIZE}
        )
        batch = expect(response, 200)
        items.extend(batch)
        if len(batch) < PAGE_SIZE:
            return items
        page += 1


async def get_one(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> Any:
    """One resource; a refusal ends the command with the API's message."""
    return expect(await client.get(path, params=params), 200)


def expect(response: httpx.Response, status: int) -> Any:
    """The answer's body (None for 204) when it has the expected status; otherwise the
    command ends with the API's message."""
    if response.status_code != status:
        raise CliError(error_message(response))
    return None if status == 204 else response.json()


ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="NICO_API_URL",
        help="Base URL of the nico API [env NICO_API_URL; default http://NICO_HOST:NICO_PORT, "
        "i.e. http://127.0.0.1:8388].",
        show_default=False,
    ),
]
Org = Annotated[str, typer.Option("--org", envvar="NICO_ORG", help="Org name [env NICO_ORG].")]
Token = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="NICO_TOKEN", help="Bearer token [env NICO_TOKEN].", show_default=False
    ),
]
Site = Annotated[
    str | None,
    typer.Option(
        "--site", help="Site name or id (default: the org's only site).", show_default=False
    ),
]


def target(api_url: str | None, org: str, token: str | None) -> ApiTarget:
    if not token:
        raise CliError(
            "no token: pass --token or set NICO_TOKEN (`export NICO_TOKEN=$(nico token)`)"
        )
    return ApiTarget((api_url or default_api_url()).rstrip("/"), org, token)


def connect(api_url: str | None, org: str, token: str | None) -> ApiTarget:
    """`target`, ending the command (exit 1) when there is no token."""
    try:
        return target(api_url, org, token)
    except CliError as exc:
        raise fail(exc) from None


def fail(exc: Exception) -> typer.Exit:
    """Print `error: ...` to stderr; the caller raises the returned exit (code 1)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an API or connection failure ends the command (exit 1)."""
    import asyncio

    import httpx

    try:
        return asyncio.run(work)
    except CliError as exc:
        raise fail(exc) from None
    except httpx.HTTPError as exc:
        where = str(exc.request.url.copy_with(path="/", query=None)) if _has_request(exc) else ""
        reason = str(exc) or type(exc).__name__
        raise fail(CliError(f"cannot reach the API {where}: {reason}".replace("  ", " "))) from None


def with_client(api: ApiTarget, work: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """`run` around `work` with one API client, closed afterwards."""

    async def go() -> T:
        async with api.client() as client:
            return await work(client)

    return run(go())


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018 (raises RuntimeError when unset)
    except RuntimeError:
        return False
    return True
