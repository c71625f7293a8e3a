"""Inventory writes the API and the demo seed share: sites, rack import, deletes.

Every check runs before the first write, so a refused request changes nothing; the
database constraints catch what a concurrent request slips in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nico.errors import Conflict, ValidationFailed
from nico.rules.install import install_builtin_defaults
from nico.schemas.inventory import BmcInput, RackCreateRequest, TrayInput
from nico.schemas.site import SiteRedfishInput, SiteUpdateRequest
from nico.secretbox import SecretBox
from nico.store import inventory
from nico.store.models import Bmc, Provider, Rack, Site, Tray, utcnow

INVALID_BODY = "Failed to validate request data"


# --- sites -----------------------------------------------------------------------------


async def create_site(
    session: AsyncSession,
    provider: Provider,
    *,
    name: str,
    description: str,
    flow: bool,
    redfish: SiteRedfishInput | None = None,
) -> Site:
    """Insert a site and install the built-in rules as its defaults, in one transaction."""
    if await inventory.site_name_taken(session, provider.id, name):
        raise _site_name_conflict(name)
    site = Site(
        id=uuid.uuid4(),
        provider_id=provider.id,
        name=name,
        description=description,
        flow_enabled=flow,
    )
    if redfish is not None:
        _apply_redfish(site, redfish)
    session.add(site)
    try:
        await session.flush()
    except IntegrityError:
        raise _site_name_conflict(name) from None
    await install_builtin_defaults(session, site.id)
    return site


async def update_site(session: AsyncSession, site: Site, change: SiteUpdateRequest) -> Site:
    """Apply the fields the request names; the name stays unique within the provider."""
    if change.name is not None and change.name != site.name:
        if await inventory.site_name_taken(
            session, site.provider_id, change.name, other_than=site.id
        ):
            raise _site_name_conflict(change.name)
        site.name = change.name
    if change.description is not None:
        site.description = change.description
    if change.capabilities is not None and change.capabilities.flow is not None:
        site.flow_enabled = change.capabilities.flow
    if change.redfish is not None:
        _apply_redfish(site, change.redfish)
    try:
        await session.flush()
    except IntegrityError:
        raise _site_name_conflict(site.name) from None
    await session.refresh(site)
    return site


async def delete_site(session: AsyncSession, site: Site) -> None:
    """Only an empty site can go: its racks must be deleted first (409 otherwise)."""
    racks = await inventory.count_racks(session, site.id)
    if racks:
        raise Conflict(
            f"Site {site.name} still has {racks} rack(s); delete them before the site",
            {"racks": str(racks)},
        )
    await session.execute(delete(Site).where(Site.id == site.id))


def _apply_redfish(site: Site, redfish: SiteRedfishInput) -> None:
    """Only the fields the request names change; an explicit null clears one."""
    given = redfish.model_fields_set
    if "verify_tls" in given:
        site.bmc_verify_tls = redfish.verify_tls
    if "ca_bundle" in given:
        site.bmc_ca_bundle = redfish.ca_bundle
    if "firmware_catalog" in given:
        site.firmware_catalog = redfish.firmware_catalog


def _site_name_conflict(name: str) -> Conflict:
    return Conflict(
        f"Site with name {name} already exists for org's Provider", {"name": "already exists"}
    )


# --- racks -----------------------------------------------------------------------------


async def import_rack(
    session: AsyncSession, site: Site, request: RackCreateRequest, secrets: SecretBox
) -> Rack:
    """Insert a rack with its trays and BMCs; 400 for a bad body, 409 for a taken key."""
    _check_body(request)
    await _check_unique(session, site, request)
    rack = Rack(
        id=uuid.uuid4(),
        site_id=site.id,
        name=request.name,
        manufacturer=request.manufacturer,
        model=request.model,
        serial_number=request.serial_number,
        description=request.description,
        location=request.location.model_dump() if request.location else None,
        backend=request.backend,
    )
    trays = [_tray_row(site, rack, component) for component in request.components]
    now = utcnow()
    bmcs = [
        # Distinct timestamps keep BMCs listed in the order they were given.
        _bmc_row(tray, bmc, secrets, now + timedelta(microseconds=order))
        for tray, component in zip(trays, request.components, strict=True)
        for order, bmc in enumerate(component.bmcs)
    ]
    try:
        # Parents first: without ORM relationships the flush does not order tables.
        for rows in ([rack], trays, bmcs):
            session.add_all(rows)
            await session.flush()
    except IntegrityError:
        raise Conflict(
            "Rack conflicts with inventory registered at the same time "
            "(rack name, tray serial number or BMC MAC address); retry to see which"
        ) from None
    return rack


async def delete_rack(session: AsyncSession, rack: Rack) -> None:
    """Delete a rack and its trays; 409 while a task on it is Pending, Waiting or Running."""
    await inventory.lock_rack(session, rack.id)
    active = await inventory.active_task_ids(session, rack.id)
    if active:
        raise Conflict(
            f"Rack {rack.name} has {len(active)} active task(s); cancel them or wait for "
            "them to finish before deleting the rack",
            {"taskIds": ",".join(str(t) for t in active)},
        )
    await session.execute(delete(Rack).where(Rack.id == rack.id))


def _tray_row(site: Site, rack: Rack, component: TrayInput) -> Tray:
    position = component.position
    return Tray(
        id=uuid.uuid4(),
        rack_id=rack.id,
        site_id=site.id,
        type=component.type.value,
        component_id=component.component_id,
        name=component.name,
        manufacturer=component.manufacturer,
        model=component.model,
        serial_number=component.serial_number,
        description=component.description,
        firmware_version=component.firmware_version,
        slot_id=position.slot_id if position else 0,
        tray_idx=position.tray_idx if position else 0,
        host_id=position.host_id if position else 0,
        backend=component.backend,
    )


def _bmc_row(tray: Tray, bmc: BmcInput, secrets: SecretBox, created: datetime) -> Bmc:
    password = bmc.password.get_secret_value() if bmc.password is not None else None
    return Bmc(
        id=uuid.uuid4(),
        tray_id=tray.id,
        type=bmc.type,
        mac_address=bmc.mac_address,
        ip_address=bmc.ip_address,
        port=bmc.port,
        resource_id=bmc.resource_id,
        username=bmc.username,
        password_encrypted=secrets.encrypt(password) if password is not None else None,
        created=created,
    )


def _bmcs(request: RackCreateRequest) -> Iterator[tuple[str, BmcInput]]:
    for i, component in enumerate(request.components):
        for k, bmc in enumerate(component.bmcs):
            yield f"components[{i}].bmcs[{k}]", bmc


def _check_body(request: RackCreateRequest) -> None:
    """Rules that span several trays of the body (each field alone is already valid)."""
    errors: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    serials: dict[tuple[str, str], int] = {}
    positions: dict[tuple[int, int, int], int] = {}
    for i, component in enumerate(request.components):
        here = f"components[{i}]"
        first = names.setdefault(component.name, i)
        if first != i:
            errors.append((f"{here}.name", f"duplicate of components[{first}].name"))
        key = (component.manufacturer, component.serial_number)
        first = serials.setdefault(key, i)
        if first != i:
            errors.append(
                (f"{here}.serialNumber", f"duplicate of components[{first}].serialNumber")
            )
        if component.position is not None:
            p = component.position
            first = positions.setdefault((p.slot_id, p.tray_idx, p.host_id), i)
            if first != i:
                errors.append(
                    (f"{here}.position", f"same slotId/trayIdx/hostId as components[{first}]")
                )
        backend = component.backend or request.backend
        if backend == "redfish" and not any(b.ip_address for b in component.bmcs):
            errors.append((f"{here}.bmcs", "a BMC with ipAddress is required for redfish"))
    macs: dict[str, str] = {}
    for path, bmc in _bmcs(request):
        if bmc.password is not None and not bmc.username:
            errors.append((f"{path}.username", "is required when password is set"))
        if bmc.mac_address is not None:
            first_path = macs.setdefault(bmc.mac_address, path)
            if first_path != path:
                errors.append((f"{path}.macAddress", f"duplicate of {first_path}.macAddress"))
    if errors:
        raise ValidationFailed(INVALID_BODY, errors)


async def _check_unique(session: AsyncSession, site: Site, request: RackCreateRequest) -> None:
    """409 naming the rack name, serial numbers or MAC addresses already registered."""
    if await inventory.get_rack_by_name(session, site.id, request.name) is not None:
        raise Conflict(
            f"Rack with name {request.name} already exists in Site", {"name": "already exists"}
        )
    pairs = [(c.manufacturer, c.serial_number) for c in request.components]
    taken = await inventory.registered_serials(session, pairs)
    if taken:
        clashes = [
            (f"components[{i}].serialNumber", c)
            for i, c in enumerate(request.components)
            if (c.manufacturer, c.serial_number) in taken
        ]
        first = clashes[0][1]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise Conflict(
            f"Tray serial number {first.serial_number} already exists for manufacturer "
            f"{first.manufacturer or '(none)'}{more}",
            {path: "already exists" for path, _ in clashes},
        )
    macs = {path: bmc.mac_address for path, bmc in _bmcs(request) if bmc.mac_address}
    registered = await inventory.registered_macs(session, macs.values())
    if registered:
        clashing = [(path, mac) for path, mac in macs.items() if mac in registered]
        more = f" (and {len(clashing) - 1} more)" if len(clashing) > 1 else ""
        raise Conflict(
            f"BMC MAC address {clashing[0][1]} is already registered{more}",
            {f"{path}.macAddress": "already exists" for path, _ in clashing},
        )
