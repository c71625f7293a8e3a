"""`nico rule import` / `nico rule export`: rule files against the API over HTTP.

Import checks every rule of the file first (its name, description and isDefault here
with the API's own check, its operation and definition with the server's dry run) and
creates nothing unless all of them pass, so a bad file never leaves half its rules behind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from nico.cli.http import (
    DEFAULT_API_URL,
    ApiUrl,
    CliError,
    Org,
    Site,
    Token,
    base_path,
    error_message,
    fail,
    get_all,
    pick_site,
    run,
    target,
)
from nico.rules.files import RuleFileError, default_conflicts, dump_rules, load_rules

app = typer.Typer(help="Operation rules: import and export rule files.", no_args_is_help=True)


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
    failures: list[str] = []
    for doc in documents:
        failures.extend(f"{doc.where}: {path}: {problem}" for path, problem in doc.field_problems())
        response = await client.post(f"{base}/task/rule/validate", json=doc.validate_body(site_id))
        if response.status_code != 200:
            failures.append(f"{doc.where}: {error_message(response)}")
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
            lines.append(f"{doc.where}: {error_message(response)}")
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
    rules = await get_all(client, f"{base_path(org)}/task/rule", {"siteId": site_id})
    rules.sort(key=lambda r: (r["operationType"], r["operationCode"], r["created"], r["id"]))
    return dump_rules(rules, filename)


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
        api = target(api_url, org, token)
    except (OSError, CliError) as exc:
        raise fail(exc) from None

    async def work() -> list[str]:
        async with api.client() as client:
            return await import_rules(
                client,
                org=org,
                text=text,
                filename=file.name,
                site=site,
                default=default,
                dry_run=dry_run,
            )

    for line in run(work()):
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
        api = target(api_url, org, token)
    except CliError as exc:
        raise fail(exc) from None

    async def work() -> str:
        async with api.client() as client:
            return await export_rules(
                client, org=org, site=site, filename=output.name if output else None
            )

    text = run(work())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
