"""What every `nico` command that talks to the API shares: where the API is, the token,
the site, the NICo error text, and how a failure ends the command (message, exit 1)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import httpx
import typer

from nico.config import Settings

DEFAULT_API_URL = "http://127.0.0.1:8388"
PAGE_SIZE = 100

T = TypeVar("T")


class CliError(Exception):
    """A failure to report to the user (no traceback)."""


@dataclass(frozen=True)
class ApiTarget:
    api_url: str
    org: str
    token: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30.0,
        )


def base_path(org: str) -> str:
    """The org's API root, with the same NICO_API_NAME the server uses."""
    api_name = os.environ.get("NICO_API_NAME") or Settings.model_fields["api_name"].default
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


async def pick_site(client: httpx.AsyncClient, org: str, site: str | None) -> str:
    """The given site, or the org's only site."""
    if site:
        return site
    response = await client.get(f"{base_path(org)}/site")
    if response.status_code != 200:
        raise CliError(f"cannot list sites to choose one ({error_message(response)}); pass --site")
    sites = response.json()
    if len(sites) != 1:
        names = ", ".join(f"{s.get('name')} ({s.get('id')})" for s in sites) or "none"
        raise CliError(f"the org has {len(sites)} sites ({names}); pass --site ID")
    return str(sites[0]["id"])


async def get_all(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every item of a paged list endpoint."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(
            path, params=params | {"pageNumber": page, "pageSize": PAGE_SIZE}
        )
        if response.status_code != 200:
            raise CliError(error_message(response))
        batch = response.json()
        items.extend(batch)
        if len(batch) < PAGE_SIZE:
            return items
        page += 1


ApiUrl = Annotated[str, typer.Option("--api-url", help="Base URL of the nico API.")]
Org = Annotated[str, typer.Option("--org", help="Org name.")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="NICO_TOKEN", help="Bearer token (or NICO_TOKEN)."),
]
Site = Annotated[str | None, typer.Option("--site", help="Site ID (default: the org's only site).")]


def target(api_url: str, org: str, token: str | None) -> ApiTarget:
    if not token:
        raise CliError("no token: pass --token or set NICO_TOKEN (`nico token` mints one)")
    return ApiTarget(api_url.rstrip("/"), org, token)


def fail(exc: Exception) -> typer.Exit:
    """Print `error: ...` to stderr; the caller raises the returned exit (code 1)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an API or connection failure ends the command (exit 1)."""
    try:
        return asyncio.run(work)
    except CliError as exc:
        raise fail(exc) from None
    except httpx.HTTPError as exc:
        raise fail(CliError(f"cannot reach the API: {exc}")) from None
