"""`nico task list|show|cancel|watch`: the site's tasks, by rack and tray name."""

from __future__ import annotations

from typing import Annotated, Any

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
    get_one,
)
from nico.cli.output import Column, Format, OutputOption, details, dump, emit, field
from nico.cli.resolve import SiteView, in_site
from nico.cli.watch import counts, watch

task_app = typer.Typer(
    help="Tasks: list, show, cancel, watch.", no_args_is_help=True, rich_markup_mode=None
)

TASK_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("STATUS", field("status")),
    ("DESCRIPTION", field("description")),
    ("CREATED", field("created")),
    ("MESSAGE", field("message")),
]
TaskId = Annotated[str, typer.Argument(help="Task id.")]


@task_app.command("list")
def task_list(
    active: Annotated[
        bool, typer.Option("--active", help="Only Pending, Waiting and Running tasks.")
    ] = False,
    rack: Annotated[str | None, typer.Option("--rack", help="Only this rack's tasks.")] = None,
    tray: Annotated[
        str | None, typer.Option("--tray", help="Only tasks targeting this tray (RACK/TRAY or id).")
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only this status; repeatable.")
    ] = None,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """List the site's tasks, newest first (every page)."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> list[dict[str, Any]]:
        client = view.client
        params: dict[str, Any] = dict(view.site)
        if active:
            params["activeOnly"] = "true"
        if rack is not None:
            params["rackId"] = view.rack_id(rack)
        if tray is not None:
            [params["trayId"]] = await view.tray_ids([tray], None)
        if status:
            params["status"] = status
        return await get_all(client, f"{api.base}/task", params)

    emit(in_site(api, site, work), TASK_COLUMNS, output)


def _progress(task: dict[str, Any]) -> str:
    per_type = counts(task)
    return (
        "  ".join(
            f"{kind} {c[0]}/{c[2]}" + (f" ({c[1]} failed)" if c[1] else "")
            for kind, c in per_type.items()
        )
        or "-"
    )


@task_app.command("show")
def task_show(
    task_id: TaskId,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Show a task with its report."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        client = view.client
        body: dict[str, Any] = await get_one(client, f"{api.base}/task/{task_id}", view.site)
        return body

    task = in_site(api, site, work)
    rows: list[Column] = [
        *TASK_COLUMNS[:3],
        ("RULE", field("ruleId")),
        ("CREATED", field("created")),
        ("STARTED", field("started")),
        ("FINISHED", field("finished")),
        ("PROGRESS", _progress),
        ("MESSAGE", field("message")),
    ]
    details(task, rows, output)
    if output is Format.TABLE:
        stages = [
            {"stage": stage.get("number"), **step}
            for stage in (task.get("report") or {}).get("stages", [])
            for step in stage.get("steps", [])
        ]
        if stages:
            typer.echo("")
            emit(
                stages,
                [
                    ("STAGE", field("stage")),
                    ("STEP", field("componentType")),
                    ("STATUS", field("status")),
                    ("DONE", field("completedComponents")),
                    ("FAILED", field("failedComponents")),
                    ("TOTAL", field("totalComponents")),
                    ("ERROR", field("error")),
                ],
                Format.TABLE,
            )


@task_app.command("cancel")
def task_cancel(
    task_id: TaskId,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Cancel a task; prints its status afterwards."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        client = view.client
        response = await client.post(f"{api.base}/task/{task_id}/cancel", json=view.site)
        body: dict[str, Any] = expect(response, 202)
        return body

    task = in_site(api, site, work)
    if output is Format.TABLE:
        typer.echo(f"task {task['id']}: {task['status']}: {task.get('message', '')}".rstrip(": "))
    else:
        dump(task, output)


@task_app.command("watch")
def task_watch(
    task_ids: Annotated[list[str], typer.Argument(help="Task ids.")],
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between refreshes.", min=0.1)
    ] = 1.0,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Follow tasks live until every one ends; exit 0 all Succeeded, 1 any Failed,
    2 any Terminated."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> int:
        client = view.client
        return await watch(client, api.base, view.site_id, task_ids, interval=interval)

    code = in_site(api, site, work)
    if code:
        raise typer.Exit(code)
