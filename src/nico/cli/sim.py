"""`nico sim fault add|list|clear`: simulator fault drills over the API.

Racks and trays are named as operators know them (`--rack rack-01 --tray compute-07`)
or by id; names are resolved through the API, so the CLI needs nothing but a token.
"""

from __future__ import annotations

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
    with_client,
)
from nico.cli.resolve import SiteView

if TYPE_CHECKING:
    import httpx

app = typer.Typer(help="Rack simulator: fault drills.", no_args_is_help=True, rich_markup_mode=None)
fault_app = typer.Typer(
    help="Inject, list and clear faults of simulated trays (see docs/drills.md).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(fault_app, name="fault")

FAULT_HELP = (
    "unreachable, power-fails, power-hangs, firmware-fails, firmware-hangs or "
    "slow:<duration> (e.g. slow:5s)."
)
TrayOption = Annotated[str | None, typer.Option("--tray", help="Tray name or id.")]
RackOption = Annotated[
    str | None, typer.Option("--rack", help="Rack name or id (names --tray's rack).")
]


def target_text(site: SiteView, fault: dict[str, Any]) -> str:
    """`rack-01/compute-07`, `NVLSwitch trays of rack-01`, `every tray of the site`."""
    rack = site.racks.get(str(fault.get("rackId")), fault.get("rackId"))
    if fault.get("trayId"):
        return f"{rack}/{fault.get('trayName') or fault['trayId']}"
    kind = f"{fault['componentType']} trays" if fault.get("componentType") else "every tray"
    return f"{kind} of {rack}" if rack else f"{kind} of the site"


def describe(site: SiteView, fault: dict[str, Any]) -> str:
    remaining = "unlimited" if fault["remaining"] is None else f"{fault['remaining']} left"
    expires = f"until {fault['expires']}" if fault["expires"] else "no expiry"
    return f"{fault['id']}  {fault['fault']} on {target_text(site, fault)} ({remaining}, {expires})"


async def add_fault(
    client: httpx.AsyncClient,
    *,
    org: str,
    site: str | None,
    fault: str,
    rack: str | None,
    trays: list[str],
    component_type: str | None,
    count: int | None,
    expiry: str | None,
) -> list[str]:
    view = await SiteView.load(client, org, site)
    body: dict[str, Any] = {"siteId": view.site_id, "fault": fault}
    if trays:
        body["trayIds"] = await view.tray_ids(trays, rack)
    elif rack is not None:
        body["rackId"] = view.rack_id(rack)
    if component_type is not None:
        body["componentType"] = component_type
    if count is not None:
        body["count"] = count
    if expiry is not None:
        body["expiry"] = expiry
    faults = expect(await client.post(f"{view.base}/simulator/fault", json=body), 201)
    return [f"added {len(faults)} fault(s):"] + [f"  {describe(view, f)}" for f in faults]


async def list_faults(
    client: httpx.AsyncClient, *, org: str, site: str | None, rack: str | None, tray: str | None
) -> list[str]:
    view = await SiteView.load(client, org, site)
    params = await _filters(view, rack, tray)
    faults = await get_all(client, f"{view.base}/simulator/fault", params)
    if not faults:
        return ["no active faults"]
    return [describe(view, f) for f in faults]


async def clear_faults(
    client: httpx.AsyncClient,
    *,
    org: str,
    site: str | None,
    fault_id: str | None,
    rack: str | None,
    tray: str | None,
) -> list[str]:
    view = await SiteView.load(client, org, site)
    path = f"{view.base}/simulator/fault"
    if fault_id is not None:
        expect(await client.delete(f"{path}/{fault_id}", params={"siteId": view.site_id}), 204)
        return [f"cleared fault {fault_id}"]
    cleared = expect(await client.delete(path, params=await _filters(view, rack, tray)), 200)
    return [f"cleared {cleared['deleted']} fault(s)"]


async def _filters(view: SiteView, rack: str | None, tray: str | None) -> dict[str, str]:
    params = {"siteId": view.site_id}
    if tray is not None:
        [params["trayId"]] = await view.tray_ids([tray], rack)
    elif rack is not None:
        params["rackId"] = view.rack_id(rack)
    return params


def _echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@fault_app.command("add")
def add_command(
    fault: Annotated[str, typer.Argument(help=FAULT_HELP)],
    tray: Annotated[
        list[str] | None,
        typer.Option("--tray", help="Tray name or id; repeatable (one fault per tray)."),
    ] = None,
    rack: RackOption = None,
    component_type: Annotated[
        str | None, typer.Option("--type", help="Only trays of this type: Compute, NVLSwitch...")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Fire this many times (default: unlimited).")
    ] = None,
    expiry: Annotated[
        str | None,
        typer.Option(
            "--expiry",
            help='Stop after a Go duration ("30m") or at an RFC 3339 time; at most a year ahead.',
        ),
    ] = None,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Inject a fault: into --tray trays, or --type/--rack trays, or every tray of the site."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> list[str]:
        return await add_fault(
            client,
            org=org,
            site=site,
            fault=fault,
            rack=rack,
            trays=tray or [],
            component_type=component_type,
            count=count,
            expiry=expiry,
        )

    _echo(with_client(api, work))


@fault_app.command("list")
def list_command(
    rack: RackOption = None,
    tray: TrayOption = None,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """List the faults that can still fire (optionally only a rack's or a tray's)."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> list[str]:
        return await list_faults(client, org=org, site=site, rack=rack, tray=tray)

    _echo(with_client(api, work))


@fault_app.command("clear")
def clear_command(
    fault_id: Annotated[
        str | None, typer.Argument(help="Clear only this fault (an id from `list`).")
    ] = None,
    rack: RackOption = None,
    tray: TrayOption = None,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Clear one fault, a tray's or a rack's faults, or every fault of the site."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> list[str]:
        return await clear_faults(
            client, org=org, site=site, fault_id=fault_id, rack=rack, tray=tray
        )

    _echo(with_client(api, work))
