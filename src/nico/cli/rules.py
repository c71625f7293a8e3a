"""`nico rule import` / `nico rule export`: rule files against the API over HTTP.

Import checks every rule with the server's dry run first and creates nothing unless
all of them pass, so a bad file never leaves half its rules behind.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from nico.rules.files import RuleFileError, default_conflicts, dump_rules, load_rules

app = typer.Typer(help="Operation rules: import and export rule files.", no_args_is_help=True)

DEFAULT_API_URL = "http://127.0.0.1:8388"
PAGE_SIZE = 100


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
    return f"/v2/org/{org}/nico"


def _message(response: httpx.Response) -> str:
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
        raise CliError(f"cannot list sites to choose one ({_message(response)}); pass --site")
    sites = response.json()
    if len(sites) != 1:
        names = ", ".join(f"{s.get('name')} ({s.get('id')})" for s in sites) or "none"
        raise CliError(f"the org has {len(sites)} sites ({names}); pass --site ID")
    return str(sites[0]["id"])


async def import_rules(
    client: httpx.AsyncClient,
    *,
    org: str,
    text: str,
    filename: str,
    site: str | None,
    default: bool,
    dry_run: bool,
) -> list[str]:
    """Validate every rule, then (unless `dry_run`) create them; returns output lines."""
    try:
        documents = load_rules(text, filename)
    except RuleFileError as exc:
        raise CliError(str(exc)) from None
    problems = default_conflicts(documents, all_default=default)
    if problems:
        raise CliError("; ".join(problems) + ": only one rule per operation can be the default")
    site_id = await pick_site(client, org, site)
    base = base_path(org)
    failures = []
    for doc in documents:
        response = await client.post(f"{base}/task/rule/validate", json=doc.validate_body(site_id))
        if response.status_code != 200:
            failures.append(f"{doc.where}: {_message(response)}")
    if failures:
        raise CliError("nothing imported:\n  " + "\n  ".join(failures))
    if dry_run:
        return [f"{len(documents)} rule(s) valid; nothing written (--dry-run)"]
    lines = []
    for doc in documents:
        response = await client.post(
            f"{base}/task/rule", json=doc.create_body(site_id, default=default)
        )
        if response.status_code != 201:
            lines.append(f"{doc.where}: {_message(response)}")
            raise CliError("\n".join(lines))
        rule = response.json()
        mark = " (default)" if rule.get("isDefault") else ""
        lines.append(
            f"created {rule['id']} {rule['name']} "
            f"[{rule['operationType']}/{rule['operationCode']}]{mark}"
        )
    return lines


async def export_rules(
    client: httpx.AsyncClient, *, org: str, site: str | None, filename: str | None
) -> str:
    """Every rule of the site, as a file `import` reads back."""
    site_id = await pick_site(client, org, site)
    rules: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(
            f"{base_path(org)}/task/rule",
            params={"siteId": site_id, "pageNumber": page, "pageSize": PAGE_SIZE},
        )
        if response.status_code != 200:
            raise CliError(_message(response))
        batch = response.json()
        rules.extend(batch)
        if len(batch) < PAGE_SIZE:
            break
        page += 1
    rules.sort(key=lambda r: (r["operationType"], r["operationCode"], r["created"], r["id"]))
    return dump_rules(rules, filename)


ApiUrl = Annotated[str, typer.Option("--api-url", help="Base URL of the nico API.")]
Org = Annotated[str, typer.Option("--org", help="Org name.")]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="NICO_TOKEN", help="Bearer token (or NICO_TOKEN)."),
]
Site = Annotated[str | None, typer.Option("--site", help="Site ID (default: the org's only site).")]


def _target(api_url: str, org: str, token: str | None) -> ApiTarget:
    if not token:
        raise CliError("no token: pass --token or set NICO_TOKEN (`nico token` mints one)")
    return ApiTarget(api_url.rstrip("/"), org, token)


def _run(work: Any) -> Any:
    try:
        return asyncio.run(work)
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the API: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Rule file (.yaml, .yml or .json).")],
    site: Site = None,
    default: Annotated[
        bool, typer.Option("--default", help="Make each imported rule its operation's default.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only validate; write nothing.")
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = "demo",
    token: Token = None,
) -> None:
    """Import rules (upstream YAML layout or our export); all-or-nothing validation."""
    try:
        text = file.read_text()
        target = _target(api_url, org, token)
    except (OSError, CliError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    async def work() -> list[str]:
        async with target.client() as client:
            return await import_rules(
                client,
                org=org,
                text=text,
                filename=file.name,
                site=site,
                default=default,
                dry_run=dry_run,
            )

    for line in _run(work()):
        typer.echo(line)


@app.command("export")
def export_command(
    site: Site = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (.json or .yaml).")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = "demo",
    token: Token = None,
) -> None:
    """Export the site's rules as a file `nico rule import` reads back (YAML by default)."""
    try:
        target = _target(api_url, org, token)
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    async def work() -> str:
        async with target.client() as client:
            return await export_rules(
                client, org=org, site=site, filename=output.name if output else None
            )

    text = _run(work())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
