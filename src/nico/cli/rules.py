"""`nico rule list|show|validate|set-default|delete|import|export`: operation rules over
the API.

Import checks every rule of the file first (its name, description and isDefault here
with the API's own check, its operation and definition with the server's dry run) and
writes nothing unless all of them pass, so a bad file never leaves half its rules behind.
It is idempotent: a rule is matched by name (and operation) to the site's rules, then
created, updated or left alone, so importing an export changes nothing; defaults change
only where the file (or `--default`) says so. `--dry-run` says which would happen.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nico.cli.http import (
    DEFAULT_API_URL,
    DEFAULT_ORG,
    ApiTarget,
    ApiUrl,
    CliError,
    Org,
    Site,
    Token,
    base_path,
    connect,
    error_message,
    expect,
    fail,
    get_all,
    get_one,
    pick_site,
    with_client,
)
from nico.cli.output import Column, Format, OutputOption, details, dump, emit, field
from nico.cli.resolve import SiteView, in_site, rule_id

if TYPE_CHECKING:
    import httpx

    from nico.rules.files import RuleDocument

app = typer.Typer(
    help="Operation rules: list, show, validate, set-default, delete, import, export.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RULE_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("NAME", field("name")),
    ("OPERATION", lambda r: f"{r.get('operationType')}/{r.get('operationCode')}"),
    ("DEFAULT", field("isDefault")),
    ("UPDATED", field("updated")),
]


@dataclass(frozen=True)
class Planned:
    """What import does with one rule of the file."""

    doc: RuleDocument
    action: str  # create | update | unchanged
    existing: dict[str, Any] | None
    changes: dict[str, Any]
    make_default: bool


def _match(
    doc: RuleDocument, normalized: dict[str, Any], rules: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The site's rule this file rule is: same name, and same operation when several
    rules share the name."""
    named = [r for r in rules if r.get("name") == doc.name]
    if len(named) > 1:
        named = [
            r
            for r in named
            if (r.get("operationType"), r.get("operationCode"))
            == (normalized["operationType"], normalized["operationCode"])
        ]
    if len(named) > 1:
        ids = ", ".join(str(r["id"]) for r in named)
        raise CliError(f"{doc.where}: several rules of the site match by name ({ids}): rename one")
    return named[0] if named else None


def _plan(
    doc: RuleDocument, normalized: dict[str, Any], existing: dict[str, Any] | None, default: bool
) -> Planned:
    wants_default = default or doc.is_default is True
    if existing is None:
        return Planned(doc, "create", None, {}, wants_default)
    same_operation = (existing.get("operationType"), existing.get("operationCode")) == (
        normalized["operationType"],
        normalized["operationCode"],
    )
    if not same_operation:
        raise CliError(
            f"{doc.where}: the site's rule {existing['id']} of this name is "
            f"{existing.get('operationType')}/{existing.get('operationCode')}; an operation "
            "cannot change: rename or delete one"
        )
    changes: dict[str, Any] = {}
    if doc.description is not None and doc.description != existing.get("description", ""):
        changes["description"] = doc.description
    if normalized["ruleDefinition"] != existing.get("ruleDefinition"):
        changes["ruleDefinition"] = doc.rule_definition
    make_default = wants_default and not existing.get("isDefault")
    action = "update" if changes or make_default else "unchanged"
    return Planned(doc, action, existing, changes, make_default)


def _describe(plan: Planned, *, dry_run: bool, rule: dict[str, Any] | None = None) -> str:
    """`created ID NAME [Type/code] (default)`, `updated ID NAME (ruleDefinition)`,
    `unchanged ID NAME`; `would create …` / `would update …` on a dry run."""
    verb = plan.action
    if plan.action != "unchanged":
        verb = f"would {verb}" if dry_run else f"{verb}d"
    body = rule or plan.existing or {}
    ident = f"{body['id']} " if body.get("id") else ""
    text = f"{verb} {ident}{plan.doc.name}"
    if plan.action == "create":
        operation = f"{body.get('operationType')}/{body.get('operationCode')}"
        mark = " (default)" if plan.make_default else ""
        return f"{text} [{operation}]{mark}" if rule else f"{text}{mark}"
    if plan.action == "update":
        what: list[str] = [k for k in ("description", "ruleDefinition") if k in plan.changes]
        what += ["made default"] if plan.make_default else []
        return f"{text} ({', '.join(what)})"
    return text


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
    """Validate every rule, match it by name, then (unless `dry_run`) create or update
    what differs; returns output lines, one per rule."""
    from nico.rules.files import RuleFileError, default_conflicts, load_rules

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
    normalized: list[dict[str, Any]] = []
    for doc in documents:
        failures.extend(f"{doc.where}: {path}: {problem}" for path, problem in doc.field_problems())
        response = await client.post(f"{base}/task/rule/validate", json=doc.validate_body(site_id))
        if response.status_code != 200:
            failures.append(f"{doc.where}: {error_message(response)}")
            normalized.append({})
        else:
            normalized.append(response.json())
    if failures:
        raise CliError("nothing imported:\n  " + "\n  ".join(failures))
    existing = await get_all(client, f"{base}/task/rule", {"siteId": site_id})
    plans = [
        _plan(doc, norm, _match(doc, norm, existing), default)
        for doc, norm in zip(documents, normalized, strict=True)
    ]
    if dry_run:
        lines = [_describe(p, dry_run=True) for p in plans]
        return [*lines, f"{len(plans)} rule(s) valid; nothing written (--dry-run)"]
    return [await _apply(client, base, site_id, plan) for plan in plans]


async def _apply(client: httpx.AsyncClient, base: str, site_id: str, plan: Planned) -> str:
    doc = plan.doc
    if plan.action == "create":
        response = await client.post(
            f"{base}/task/rule", json=doc.create_body(site_id, default=plan.make_default)
        )
        if response.status_code != 201:
            raise CliError(f"{doc.where}: {error_message(response)}")
        return _describe(plan, dry_run=False, rule=response.json())
    if plan.action == "update":
        assert plan.existing is not None
        path = f"{base}/task/rule/{plan.existing['id']}"
        if plan.changes:
            response = await client.patch(path, json={"siteId": site_id, **plan.changes})
            if response.status_code != 204:
                raise CliError(f"{doc.where}: {error_message(response)}")
        if plan.make_default:
            response = await client.post(f"{path}/default", json={"siteId": site_id})
            if response.status_code != 200:
                raise CliError(f"{doc.where}: {error_message(response)}")
    return _describe(plan, dry_run=False)


async def export_rules(
    client: httpx.AsyncClient, *, org: str, site: str | None, filename: str | None
) -> str:
    """Every rule of the site, as a file `import` reads back."""
    from nico.rules.files import dump_rules

    site_id = await pick_site(client, org, site)
    rules = await get_all(client, f"{base_path(org)}/task/rule", {"siteId": site_id})
    rules.sort(key=lambda r: (r["operationType"], r["operationCode"], r["created"], r["id"]))
    return dump_rules(rules, filename)


RuleArg = Annotated[str, typer.Argument(help="Rule name or id.")]


@app.command("list")
def list_command(
    operation_type: Annotated[
        str | None,
        typer.Option("--type", help="PowerControl, FirmwareControl or BringUp."),
    ] = None,
    code: Annotated[str | None, typer.Option("--code", help="e.g. power_on, upgrade.")] = None,
    default_only: Annotated[
        bool, typer.Option("--default", help="Only the site's default rules.")
    ] = False,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """List the site's rules, newest first (every page)."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"siteId": await pick_site(client, org, site)}
        if operation_type is not None:
            params["operationType"] = operation_type
        if code is not None:
            params["operationCode"] = code
        if default_only:
            params["isDefault"] = "true"
        return await get_all(client, f"{api.base}/task/rule", params)

    emit(with_client(api, work), RULE_COLUMNS, output)


@app.command("show")
def show_command(
    rule: RuleArg,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Show a rule; the table view ends with its definition as YAML."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        client = view.client
        found = await rule_id(client, view, rule)
        body: dict[str, Any] = await get_one(client, f"{api.base}/task/rule/{found}", view.site)
        return body

    body = in_site(api, site, work)
    details(body, [*RULE_COLUMNS, ("DESCRIPTION", field("description"))], output)
    if output is Format.TABLE:
        typer.echo("definition:")
        dump(body.get("ruleDefinition"), Format.YAML)


@app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="Rule file (.yaml, .yml or .json).")],
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Check a rule file with the server's dry run; writes nothing (exit 1 if invalid)."""
    text = _read(file)
    api = connect(api_url, org, token)
    lines = _import(text, file, site, api, default=False, dry_run=True)
    typer.echo(lines[-1].split(";")[0] + "; `nico rule import` would:")
    for line in lines[:-1]:
        typer.echo(f"  {line.removeprefix('would ')}")


@app.command("set-default")
def set_default_command(
    rule: RuleArg,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Make a rule the default for its operation (the previous default stays a rule)."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        client = view.client
        found = await rule_id(client, view, rule)
        response = await client.post(f"{api.base}/task/rule/{found}/default", json=view.site)
        body: dict[str, Any] = expect(response, 200)
        return body

    body = in_site(api, site, work)
    typer.echo(
        f"{body['id']} {body['name']} is the default "
        f"{body['operationType']}/{body['operationCode']} rule"
    )


@app.command("delete")
def delete_command(
    rule: RuleArg,
    force: Annotated[
        bool, typer.Option("--force", help="Also when it is a default or racks use it.")
    ] = False,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Delete a rule."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> str:
        client = view.client
        found = await rule_id(client, view, rule)
        params = view.site | ({"force": "true"} if force else {})
        expect(await client.delete(f"{api.base}/task/rule/{found}", params=params), 204)
        return found

    typer.echo(f"deleted rule {in_site(api, site, work)}")


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except OSError as exc:
        raise fail(CliError(f"cannot read {file}: {exc.strerror or exc}")) from None


def _import(
    text: str, file: Path, site: str | None, api: ApiTarget, *, default: bool, dry_run: bool
) -> list[str]:
    """`import_rules` on a rule file's text, for `validate` (a dry run) and `import`."""

    async def work(client: httpx.AsyncClient) -> list[str]:
        return await import_rules(
            client,
            org=api.org,
            text=text,
            filename=file.name,
            site=site,
            default=default,
            dry_run=dry_run,
        )

    return with_client(api, work)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Rule file (.yaml, .yml or .json).")],
    site: Site = None,
    default: Annotated[
        bool, typer.Option("--default", help="Make each imported rule its operation's default.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only validate and say what would change.")
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Import rules (upstream YAML layout or our export): all-or-nothing validation, then
    each rule created, updated or left unchanged (matched by name)."""
    text = _read(file)
    api = connect(api_url, org, token)
    for line in _import(text, file, site, api, default=default, dry_run=dry_run):
        typer.echo(line)


@app.command("export")
def export_command(
    site: Site = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (.json or .yaml).")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Export the site's rules as a file `nico rule import` reads back (YAML by default)."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> str:
        return await export_rules(
            client, org=org, site=site, filename=output.name if output else None
        )

    text = with_client(api, work)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
