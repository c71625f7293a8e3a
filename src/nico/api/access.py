"""The provider-site guard every site-scoped call runs, in upstream's order, and the
rack and tray lookups of the reads under a rack or tray (`/rack/{id}/...`)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from nico.errors import BadRequest, Forbidden, NotFound, PreconditionFailed
from nico.ids import NOT_A_UUID, as_uuid
from nico.store import inventory
from nico.store.db import Database
from nico.store.models import Provider, Rack, Site, Tray

NO_PROVIDER = "Failed to retrieve Infrastructure Provider for org"
SITE_INVALID = "Failed to validate Site specified in request: invalid ID"
SITE_MISSING = "Site specified in request does not exist"
SITE_FOREIGN = "Site specified in request doesn't belong to current org's Provider"
FLOW_DISABLED = "Site does not have NICo Flow enabled"
# Upstream's words for a malformed id in the path of a rack's or tray's sub-resource
# (`GET /rack/{id}/task`, `GET /tray/{id}/task`); our reads under a rack or tray
# (history, power, firmware) say the same. `GET /tray/{id}` itself says "in URL".
INVALID_RACK_ID = "Invalid Rack ID specified in URL"
INVALID_TRAY_ID = "Invalid Tray ID specified in URL"
RACK_NOT_FOUND = "Rack not found"
TRAY_NOT_FOUND = "Tray not found"


def parse_uuid(value: str | None, message: str, field: str) -> uuid.UUID:
    """400 with `message` when `value` is not a UUID (a malformed id is 400 everywhere)."""
    parsed = None if value is None else as_uuid(value)
    if parsed is None:
        raise BadRequest(message, {field: NOT_A_UUID})
    return parsed


async def require_provider(session: AsyncSession, org: str) -> Provider:
    provider = await inventory.get_provider(session, org)
    if provider is None:
        raise BadRequest(NO_PROVIDER)
    return provider


async def require_site(
    session: AsyncSession,
    org: str,
    site_id: str | uuid.UUID | None,
    *,
    in_body: bool = False,
    flow: bool = True,
) -> Site:
    """Provider exists -> siteId given and a UUID -> site exists -> same provider -> Flow."""
    if site_id is None or site_id == "":
        await require_provider(session, org)
        message = "siteId is required" if in_body else "siteId query parameter is required"
        raise BadRequest(message, {"siteId": "is required"})
    if not isinstance(site_id, uuid.UUID) and as_uuid(site_id) is None:
        await require_provider(session, org)
    parsed = (
        site_id if isinstance(site_id, uuid.UUID) else parse_uuid(site_id, SITE_INVALID, "siteId")
    )
    # The provider and the site in one round trip: every site-scoped request runs this.
    found = await inventory.get_provider_and_site(session, org, parsed)
    if found is None:
        judge_site(None, None, None, flow=flow)
        raise AssertionError("unreachable")
    provider, site = found
    judge_site(
        provider.id,
        None if site is None else site.provider_id,
        None if site is None else site.flow_enabled,
        flow=flow,
    )
    assert site is not None
    return site


async def site_id_to_check(db: Database, org: str, site_id: str | None) -> uuid.UUID:
    """The first checks of `require_site` (siteId given and a UUID), for a caller that
    reads the rest of the guard with its own query and passes it to `judge_site`."""
    parsed = as_uuid(site_id) if site_id else None
    if parsed is None:
        # Raises the error require_site always did.
        await db.read_session(lambda session: require_site(session, org, site_id))
        raise AssertionError("unreachable")
    return parsed


def judge_site(
    provider_id: uuid.UUID | None,
    site_provider_id: uuid.UUID | None,
    flow_enabled: bool | None,
    *,
    flow: bool = True,
) -> None:
    """The guard's verdict on what was read: the org's provider (None: the org has
    none), the requested site's provider (None: no such site) and its Flow switch."""
    if provider_id is None:
        raise BadRequest(NO_PROVIDER)
    if site_provider_id is None:
        raise BadRequest(SITE_MISSING, {"siteId": "does not exist"})
    if site_provider_id != provider_id:
        raise Forbidden(SITE_FOREIGN)
    if flow and not flow_enabled:
        raise PreconditionFailed(FLOW_DISABLED)


async def rack_in_site(
    session: AsyncSession,
    org: str,
    site_id: str | None,
    raw_rack_id: str,
    *,
    invalid_id: str = INVALID_RACK_ID,
) -> tuple[Site, Rack]:
    """Guard first, then the id: 400 malformed, 404 unknown or in another site."""
    site = await require_site(session, org, site_id)
    rack = await inventory.get_rack(session, site.id, parse_uuid(raw_rack_id, invalid_id, "id"))
    if rack is None:
        raise NotFound(RACK_NOT_FOUND)
    return site, rack


async def tray_in_site(
    session: AsyncSession,
    org: str,
    site_id: str | None,
    raw_tray_id: str,
    *,
    invalid_id: str = INVALID_TRAY_ID,
) -> tuple[Site, Tray]:
    """Guard first, then the id: 400 malformed, 404 unknown or in another site."""
    site = await require_site(session, org, site_id)
    found = await inventory.get_tray(session, site.id, parse_uuid(raw_tray_id, invalid_id, "id"))
    if found is None:
        raise NotFound(TRAY_NOT_FOUND)
    return site, found[0]
