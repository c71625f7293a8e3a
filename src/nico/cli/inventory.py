"""`nico site|rack|tray list|show`: the inventory, read through the API by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from nico.cli.http import (
    DEFAULT_API_URL,
    DEFAULT_ORG,
    ApiUrl,
    CliError,
    Org,
    Site,
    Token,
    connect,
    get_all,
    get_one,
    pick_site,
    with_client,
)
from nico.cli.output import Column, Format, OutputOption, details, emit, field
from nico.cli.resolve import SiteView, in_site

if TYPE_CHECKING:
    import httpx

site_app = typer.Typer(help="Sites of the org.", no_args_is_help=True, rich_markup_mode=None)
rack_app = typer.Typer(
    help="Racks: list, show, power, firmware, bring-up.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
tray_app = typer.Typer(
    help="Trays: list, show, power, firmware.", no_args_is_help=True, rich_markup_mode=None
)


def _flow(item: dict[str, Any]) -> Any:
    return (item.get("capabilities") or {}).get("flow")


SITE_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("NAME", field("name")),
    ("FLOW", _flow),
    ("DESCRIPTION", field("description")),
]
RACK_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("NAME", field("name")),
    ("MODEL", field("model")),
    ("SERIAL", field("serialNumber")),
    ("BACKEND", field("backend")),
]
TRAY_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("RACK", field("rackName")),
    ("NAME", field("name")),
    ("TYPE", field("type")),
    ("SLOT", lambda t: (t.get("position") or {}).get("slotId")),
    ("POWER", field("powerState")),
    ("FIRMWARE", field("firmwareVersion")),
]


@site_app.command("list")
def site_list(
    flow: Annotated[
        bool | None, typer.Option("--flow/--no-flow", help="Only sites with/without Flow.")
    ] = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """List the org's sites (every page)."""
    api = connect(api_url, org, token)
    params = {} if flow is None else {"isFlowEnabled": str(flow).lower()}

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        return await get_all(client, f"{api.base}/site", params)

    emit(with_client(api, work), SITE_COLUMNS, output)


@site_app.command("show")
def site_show(
    site: Annotated[
        str | None, typer.Argument(help="Site name or id (default: the org's only site).")
    ] = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Show one site."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> dict[str, Any]:
        site_id = await pick_site(client, org, site)
        body: dict[str, Any] = await get_one(client, f"{api.base}/site/{site_id}", {})
        return body

    details(with_client(api, work), [*SITE_COLUMNS, ("CREATED", field("created"))], output)


@rack_app.command("list")
def rack_list(
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Only racks of this name; repeatable.")
    ] = None,
    manufacturer: Annotated[
        list[str] | None, typer.Option("--manufacturer", help="Only this maker; repeatable.")
    ] = None,
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """List the site's racks (every page)."""
    api = connect(api_url, org, token)

    async def work(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        site_id = await pick_site(client, org, site)
        params: dict[str, Any] = {"siteId": site_id}
        if name:
            params["name"] = name
        if manufacturer:
            params["manufacturer"] = manufacturer
        return await get_all(client, f"{api.base}/rack", params)

    emit(with_client(api, work), RACK_COLUMNS, output)


def _count_types(rack: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for component in rack.get("components") or []:
        kind = str(component.get("type"))
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"


@rack_app.command("show")
def rack_show(
    rack: Annotated[str, typer.Argument(help="Rack name or id.")],
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Show one rack and what it holds."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        client = view.client
        body: dict[str, Any] = await get_one(
            client,
            f"{api.base}/rack/{view.rack_id(rack)}",
            view.site | {"includeComponents": "true"},
        )
        return body

    rows = [*RACK_COLUMNS, ("TRAYS", _count_types), ("CREATED", field("created"))]
    details(in_site(api, site, work), rows, output)


@tray_app.command("list")
def tray_list(
    rack: Annotated[str | None, typer.Option("--rack", help="Only this rack (name or id).")] = None,
    kind: Annotated[
        str | None, typer.Option("--type", help="Only Compute, NVLSwitch or PowerShelf.")
    ] = None,
    slot: Annotated[
        int | None, typer.Option("--slot", help="Only this slot (needs --rack).")
    ] = None,
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """List the site's trays (every page), optionally of one rack or type."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> list[dict[str, Any]]:
        client = view.client
        params: dict[str, Any] = dict(view.site)
        if rack is not None:
            params["rackId"] = view.rack_id(rack)
        if kind is not None:
            params["type"] = kind
        if slot is not None:
            params["slotId"] = slot
        return await get_all(client, f"{api.base}/tray", params)

    emit(in_site(api, site, work), TRAY_COLUMNS, output)


@tray_app.command("show")
def tray_show(
    tray: Annotated[str, typer.Argument(help="RACK/TRAY (e.g. rack-01/compute-07) or tray id.")],
    site: Site = None,
    output: OutputOption = Format.TABLE,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Show one tray."""
    api = connect(api_url, org, token)

    async def work(view: SiteView) -> dict[str, Any]:
        client = view.client
        [tray_id] = await view.tray_ids([tray], None)
        body: dict[str, Any] = await get_one(client, f"{api.base}/tray/{tray_id}", view.site)
        return body

    rows = [*TRAY_COLUMNS, ("SERIAL", field("serialNumber")), ("MODEL", field("model"))]
    try:
        details(in_site(api, site, work), rows, output)
    except CliError as exc:  # pragma: no cover - run() already turns these into exit 1
        raise typer.Exit(1) from exc
