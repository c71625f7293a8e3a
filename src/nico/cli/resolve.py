"""Names as operators know them (`rack-01`, `rack-01/compute-07`, a site's name) turned
into the ids the API takes, through the API itself: the CLI needs nothing but a token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from nico.cli.http import ApiTarget, CliError, base_path, get_all, is_uuid, pick_site, with_client

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")


@dataclass
class SiteView:
    """One site as the commands see it: its id and its racks by id."""

    client: httpx.AsyncClient
    org: str
    site_id: str
    racks: dict[str, str]

    @classmethod
    async def load(cls, client: httpx.AsyncClient, org: str, site: str | None) -> SiteView:
        site_id = await pick_site(client, org, site)
        racks = await get_all(client, f"{base_path(org)}/rack", {"siteId": site_id})
        return cls(client, org, site_id, {str(r["id"]): str(r["name"]) for r in racks})

    @property
    def base(self) -> str:
        return base_path(self.org)

    @property
    def site(self) -> dict[str, str]:
        return {"siteId": self.site_id}

    def rack_id(self, rack: str) -> str:
        """A rack's id from its name or id."""
        if rack in self.racks:
            return rack
        found = [rack_id for rack_id, name in self.racks.items() if name == rack]
        if not found:
            known = ", ".join(sorted(self.racks.values())) or "none"
            raise CliError(f"no rack {rack!r} in site {self.site_id} (racks: {known})")
        return found[0]

    def rack_name(self, rack: str) -> str:
        """A rack's name from its name or id."""
        return self.racks[self.rack_id(rack)]

    async def tray_ids(self, trays: list[str], rack: str | None) -> list[str]:
        """Tray ids from ids, `RACK/TRAY` names, or names unique in the rack (--rack) or,
        without it, in the site."""
        params = {"siteId": self.site_id}
        if rack is not None:
            params["rackId"] = self.rack_id(rack)
        named = [t for t in trays if not is_uuid(t)]
        for name in named:
            if "/" in name:
                self.rack_id(name.split("/", 1)[0])
        if any("/" in name for name in named):
            params.pop("rackId", None)
        listed = await get_all(self.client, f"{self.base}/tray", params) if named else []
        ids = []
        for tray in trays:
            if is_uuid(tray):
                ids.append(tray)
                continue
            ids.append(str(self._match(listed, tray, rack)["id"]))
        return ids

    def _match(self, listed: list[dict[str, Any]], tray: str, rack: str | None) -> dict[str, Any]:
        in_rack, name = tray.split("/", 1) if "/" in tray else (None, tray)
        if in_rack is not None:
            rack_id = self.rack_id(in_rack)
            matches = [t for t in listed if t["name"] == name and str(t["rackId"]) == rack_id]
        else:
            matches = [t for t in listed if t["name"] == name]
        if not matches:
            where = f"rack {in_rack or rack}" if (in_rack or rack) else f"site {self.site_id}"
            raise CliError(f"no tray named {name!r} in {where}")
        if len(matches) > 1:
            racks = ", ".join(sorted(str(m["rackName"]) for m in matches))
            raise CliError(
                f"tray name {name!r} is in several racks ({racks}): pass --rack or name it "
                f"RACK/{name}"
            )
        return matches[0]


async def rule_id(client: httpx.AsyncClient, view: SiteView, rule: str) -> str:
    """A rule's id from its id or its (unique) name in the site."""
    if is_uuid(rule):
        return rule
    rules = await get_all(client, f"{view.base}/task/rule", view.site)
    found = [r for r in rules if r.get("name") == rule]
    if not found:
        raise CliError(f"no rule named {rule!r} in site {view.site_id} (`nico rule list`)")
    if len(found) > 1:
        ids = ", ".join(str(r["id"]) for r in found)
        raise CliError(f"{len(found)} rules are named {rule!r} ({ids}): pass the id")
    return str(found[0]["id"])


def in_site(api: ApiTarget, site: str | None, work: Callable[[SiteView], Awaitable[T]]) -> T:
    """What most commands do: one client, the site loaded (racks by name), then `work`;
    an API or connection failure ends the command (exit 1)."""

    async def go(client: httpx.AsyncClient) -> T:
        return await work(await SiteView.load(client, api.org, site))

    return with_client(api, go)
