"""`nico rack|tray status` and `nico rack|tray history`: what a rack or tray is, wants to
be and is doing, and what happened to it, by name (docs/state.md).

Status joins three reads of the API into one table: power (`GET .../power`: actual with
the age of the read and its error, desired), firmware (`GET .../firmware`: version,
catalog target, compliance) and the tasks in flight. `-o json|yaml` prints the three
bodies as `{"power", "firmware", "tasks"}`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nico.cli.http import (
    DEFAULT_API_URL,
    DEFAULT_ORG,
    ApiUrl,
    Org,
    Site,
    Token,
    connect,
    expect,
    get_all,
)
from nico.cli.inventory import rack_app, tray_app
from nico.cli.output import Column, Format, OutputOption, details, dump, emit, field, table
from nico.cli.resolve import SiteView, in_site

if TYPE_CHECKING:
    import httpx

RackArg = Annotated[str, typer.Argument(help="Rack name or id.")]
TrayArg = Annotated[str, typer.Argument(help="RACK/TRAY (e.g. rack-01/compute-07) or tray id.")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="Only power or only firmware rows.")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only rows at or after this RFC 3339 time.")
]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, help="Newest rows to show (default 50).")]
HISTORY_PAGE = 100


def age(stamp: Any, now: datetime | None = None) -> str:
    """`42s ago`, `7m ago`, `3h ago`, `2d ago` for an RFC 3339 time; `-` for none."""
    if not stamp:
        return "-"
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    seconds = max(((now or datetime.now(UTC)) - when).total_seconds(), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _actual(tray: dict[str, Any]) -> str:
    actual = tray.get("actual") or {}
    state = str(actual.get("state") or "Unknown")
    good = actual.get("lastGood")
    if good:  # the last read failed: say what was last seen, and when
        return f"{state} (last {good.get('state')} {age(good.get('observedAt'))})"
    return state


def _tasks_text(tasks: list[dict[str, Any]]) -> str:
    """`ACPowerCycle Running, upgrade 2.1.0 Pending`: a tray's power and firmware tasks."""
    out = []
    for t in tasks:
        what = t.get("requested") or t.get("operationCode")
        if t.get("version"):
            what = f"{what} {t['version']}"
        out.append(f"{what} {t.get('status')}")
    return ", ".join(out)


def _status_rows(power: dict[str, Any], firmware: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per tray: power (actual, age, desired, error), firmware (as read: `-`
    until the BMC was read, like power's `Unknown`), its power and firmware tasks."""
    by_tray = {str(t.get("id")): t for t in (firmware or {}).get("components") or []}
    rows = []
    for tray in power.get("components") or []:
        actual, desired = tray.get("actual") or {}, tray.get("desired") or {}
        fw = by_tray.get(str(tray.get("id"))) or {}
        rows.append(
            {
                "name": tray.get("name"),
                "type": tray.get("type"),
                "power": _actual(tray),
                "observed": age(actual.get("observedAt")),
                "desired": desired.get("state"),
                # Only a version read from the BMC: never read, `version` is the import's.
                "firmware": fw.get("version") if fw.get("observedAt") else None,
                "target": fw.get("targetVersion"),
                "compliance": (
                    f"{fw['compliance']} (stale)" if fw.get("stale") else fw.get("compliance")
                ),
                "tasks": _tasks_text((tray.get("tasks") or []) + (fw.get("tasks") or [])) or None,
                "error": actual.get("error") or fw.get("error"),
            }
        )
    return rows


STATUS_COLUMNS: list[Column] = [
    ("TRAY", field("name")),
    ("TYPE", field("type")),
    ("POWER", field("power")),
    ("OBSERVED", field("observed")),
    ("DESIRED", field("desired")),
    ("FIRMWARE", field("firmware")),
    ("TARGET", field("target")),
    ("COMPLIANCE", field("compliance")),
    ("TASKS", field("tasks")),
    ("ERROR", field("error")),
]
TASK_COLUMNS: list[Column] = [
    ("ACTIVE TASK", field("id")),
    ("STATUS", field("status")),
    ("DESCRIPTION", field("description")),
    ("STARTED", lambda t: age(t.get("started")) if t.get("started") else "not yet"),
    ("MESSAGE", field("message")),
]


async def _required(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> Any:
    return expect(await client.get(path, params=params), 200)


async def _active_tasks(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    return await get_all(client, path, params | {"activeOnly": "true"})


def _rack_summary(power: dict[str, Any], firmware: dict[str, Any] | None) -> str:
    actual, desired = power.get("actual") or {}, power.get("desired") or {}
    cov = actual.get("coverage") or {}
    parts = [
        f"rack {power.get('name')}",
        f"power {actual.get('state')} ({cov.get('on', 0)} on, {cov.get('off', 0)} off, "
        f"{cov.get('transitioning', 0)} changing, {cov.get('unknown', 0)} unknown "
        f"of {cov.get('total', 0)})",
        f"desired {desired.get('state')}",
    ]
    if firmware is not None:
        s = firmware.get("summary") or {}
        stale = f" ({s['stale']} stale: last read failed)" if s.get("stale") else ""
        parts.append(
            f"firmware {s.get('current', 0)} current, {s.get('outdated', 0)} outdated, "
            f"{s.get('unknown', 0)} unknown{stale}"
        )
    return "  ".join(parts)


def _print_status(summary: str, rows: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> None:
    typer.echo(summary)
    table(rows, STATUS_COLUMNS)
    if tasks:
        typer.echo("")
        table(tasks, TASK_COLUMNS)
    else:
        typer.echo("no active tasks")


@rack_app.command("status")
def rack_status(
    rack: RackArg,
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Power (actual, age of the read, desired, errors), firmware compliance and the
    tasks in flight of every tray of a rack."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        path = f"{api.base}/rack/{view.rack_id(rack)}"
        power, firmware, tasks = await asyncio.gather(
            _required(view.client, f"{path}/power", view.site),
            _required(view.client, f"{path}/firmware", view.site),
            _active_tasks(view.client, f"{path}/task", view.site),
        )
        return {"power": power, "firmware": firmware, "tasks": tasks}

    status = in_site(api, site, work)
    if output is not Format.TABLE:
        dump(status, output)
        return
    _print_status(
        _rack_summary(status["power"], status["firmware"]),
        _status_rows(status["power"], status["firmware"]),
        status["tasks"],
    )


@tray_app.command("status")
def tray_status(
    tray: TrayArg,
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Power (actual, age of the read, desired, error), firmware (every component, its
    target and compliance) and the tasks in flight of one tray."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        [tray_id] = await view.tray_ids([tray], None)
        path = f"{api.base}/tray/{tray_id}"
        power, firmware, tasks = await asyncio.gather(
            _required(view.client, f"{path}/power", view.site),
            _required(view.client, f"{path}/firmware", view.site),
            _active_tasks(view.client, f"{path}/task", view.site),
        )
        return {"power": power, "firmware": firmware, "tasks": tasks}

    status = in_site(api, site, work)
    if output is not Format.TABLE:
        dump(status, output)
        return
    power, firmware = status["power"], status["firmware"]
    wrapped = {"components": [power]}
    fw_wrapped = {"components": [firmware]} if firmware else None
    [row] = _status_rows(wrapped, fw_wrapped)
    details(row, [(h.replace(" ", "_"), get) for h, get in STATUS_COLUMNS], Format.TABLE)
    components = (firmware or {}).get("components") or []
    if components:
        typer.echo("")
        table(
            components,
            [
                ("COMPONENT", field("name")),
                ("VERSION", field("version")),
                ("TARGET", field("targetVersion")),
                ("COMPLIANCE", field("compliance")),
            ],
        )
    typer.echo("")
    if status["tasks"]:
        table(status["tasks"], TASK_COLUMNS)
    else:
        typer.echo("no active tasks")


# --- history -----------------------------------------------------------------------------

HISTORY_COLUMNS: list[Column] = [
    ("AT", field("at")),
    ("TRAY", field("trayName")),
    ("KIND", field("kind")),
    ("COMPONENT", field("component")),
    ("FROM", field("from")),
    ("TO", field("to")),
    ("OUTCOME", lambda r: r.get("outcome") or "observed"),
    ("BY", lambda r: r.get("createdBy") or r.get("source")),
    ("TASK", field("taskId")),
    ("MESSAGE", field("message")),
]


async def _history(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """The newest `limit` rows, page after page."""
    rows: list[dict[str, Any]] = []
    page = 1
    size = min(limit, HISTORY_PAGE)
    while len(rows) < limit:
        batch = expect(
            await client.get(path, params=params | {"pageNumber": page, "pageSize": size}), 200
        )
        rows.extend(batch)
        if len(batch) < size:
            break
        page += 1
    return rows[:limit]


def _history_params(view: SiteView, kind: str | None, since: str | None) -> dict[str, Any]:
    params: dict[str, Any] = dict(view.site)
    if kind is not None:
        params["kind"] = kind
    if since is not None:
        params["since"] = since
    return params


def _show_history(rows: list[dict[str, Any]], output: Format) -> None:
    if output is Format.TABLE and not rows:
        typer.echo("no history")
        return
    emit(rows, HISTORY_COLUMNS, output)


async def _tray_names(view: SiteView, rack_id: str) -> dict[str, str]:
    trays = await get_all(view.client, f"{view.base}/tray", view.site | {"rackId": rack_id})
    return {str(t["id"]): str(t["name"]) for t in trays}


@rack_app.command("history")
def rack_history(
    rack: RackArg,
    kind: KindOpt = None,
    since: SinceOpt = None,
    limit: LimitOpt = 50,
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Power and firmware history of a rack's trays, newest first."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> list[dict[str, Any]]:
        rack_id = view.rack_id(rack)
        rows, names = await asyncio.gather(
            _history(
                view.client,
                f"{api.base}/rack/{rack_id}/history",
                _history_params(view, kind, since),
                limit,
            ),
            _tray_names(view, rack_id),
        )
        named: list[dict[str, Any]] = []
        for row in rows:
            named.append(row | {"trayName": names.get(str(row.get("trayId")))})
        return named

    _show_history(in_site(api, site, work), output)


@tray_app.command("history")
def tray_history(
    tray: TrayArg,
    kind: KindOpt = None,
    since: SinceOpt = None,
    limit: LimitOpt = 50,
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Power and firmware history of one tray, newest first."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> list[dict[str, Any]]:
        [tray_id] = await view.tray_ids([tray], None)
        rows = await _history(
            view.client,
            f"{api.base}/tray/{tray_id}/history",
            _history_params(view, kind, since),
            limit,
        )
        name = tray.split("/", 1)[-1] if "/" in tray else tray
        for row in rows:
            row["trayName"] = name
        return rows

    _show_history(in_site(api, site, work), output)
