"""Which backend drives a tray, and the `TrayRef` it receives.

Backend choice: the tray's `backend`, else its rack's, else `NICO_BACKEND`. BMC
passwords are decrypted only into the ref handed to the backend for one call; site TLS
settings become the endpoint's `verify_tls` / `ca_bundle`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import select

from nico.config import Settings
from nico.domain import ComponentType
from nico.hardware.interface import BmcEndpoint, HardwareError, TrayBackend, TrayRef
from nico.secretbox import SecretBox
from nico.store.db import Database
from nico.store.models import Bmc, Rack, Site, Tray

KNOWN_BACKENDS = ("simulator", "redfish")
# Which of a tray's BMCs the backends talk to, in order of preference.
_BMC_PREFERENCE = ("host",)  # stored BMC types: Host, Dpu, Unknown


class BackendRegistry:
    """Builds backends once per process and tray references per call."""

    def __init__(self, settings: Settings, db: Database, secrets: SecretBox) -> None:
        self._settings = settings
        self._db = db
        self._secrets = secrets
        self._backends: dict[str, TrayBackend] = {}

    def backend(self, name: str) -> TrayBackend:
        """The backend called `name`, built on first use."""
        found = self._backends.get(name)
        if found is None:
            found = self._build(name)
            self._backends[name] = found
        return found

    def _build(self, name: str) -> TrayBackend:
        if name == "simulator":
            from nico.hardware.simulator import SimulatorBackend

            return SimulatorBackend(self._settings, self._db)
        if name == "redfish":
            try:
                from nico.hardware.redfish.backend import RedfishBackend
            except ImportError as exc:
                raise HardwareError(
                    f"the redfish backend is not available in this installation ({exc.name})",
                    retryable=False,
                ) from exc
            backend: TrayBackend = RedfishBackend(self._settings)
            return backend
        raise HardwareError(
            f"unknown backend {name!r}: must be one of {', '.join(KNOWN_BACKENDS)}",
            retryable=False,
        )

    def backend_name(self, tray: Tray, rack: Rack | None) -> str:
        return effective_backend(tray.backend, rack.backend if rack else None, self._settings)

    async def tray_refs(self, tray_ids: Iterable[str | uuid.UUID]) -> dict[str, TrayRef]:
        """References for the trays that still exist, keyed by tray id string."""
        ids = [uuid.UUID(str(t)) for t in tray_ids]
        if not ids:
            return {}
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Tray, Rack, Site)
                    .join(Rack, Rack.id == Tray.rack_id)
                    .join(Site, Site.id == Tray.site_id)
                    .where(Tray.id.in_(ids))
                )
            ).all()
            found = list(rows)
            bmcs = (
                (
                    await session.execute(
                        select(Bmc).where(Bmc.tray_id.in_(ids)).order_by(Bmc.created)
                    )
                )
                .scalars()
                .all()
            )
        by_tray: dict[uuid.UUID, list[Bmc]] = {}
        for bmc in bmcs:
            by_tray.setdefault(bmc.tray_id, []).append(bmc)
        refs: dict[str, TrayRef] = {}
        for tray, rack, site in found:
            name = self.backend_name(tray, rack)
            refs[str(tray.id)] = TrayRef(
                id=str(tray.id),
                rack_id=str(tray.rack_id),
                site_id=str(tray.site_id),
                type=ComponentType.parse(tray.type),
                name=tray.name or str(tray.id),
                backend=name,
                bmc=self._endpoint(_preferred_bmc(by_tray.get(tray.id, [])), site),
                firmware_version=tray.firmware_version or None,
                component_id=tray.component_id,
            )
            if name == "redfish":
                self._share_catalog(site)
        return refs

    async def tray_ref(self, tray_id: str | uuid.UUID) -> TrayRef:
        refs = await self.tray_refs([tray_id])
        ref = refs.get(str(tray_id))
        if ref is None:
            raise HardwareError(f"tray {tray_id} no longer exists", retryable=False)
        return ref

    def backend_for(self, ref: TrayRef) -> TrayBackend:
        """The tray's backend, its calls timed and counted (nico.metrics)."""
        from nico.metrics import MeteredBackend

        return cast(TrayBackend, MeteredBackend(ref.backend, self.backend(ref.backend)))

    def _endpoint(self, bmc: Bmc | None, site: Site) -> BmcEndpoint | None:
        if bmc is None or not bmc.ip_address:
            return None
        password = None
        if bmc.password_encrypted:
            try:
                password = self._secrets.decrypt(bmc.password_encrypted)
            except ValueError as exc:  # the message names no secret
                raise HardwareError(str(exc), retryable=False) from exc
        return BmcEndpoint(
            address=bmc.ip_address,
            port=bmc.port,
            username=bmc.username,
            password=password,
            mac_address=bmc.mac_address,
            resource_id=bmc.resource_id,
            verify_tls=(
                site.bmc_verify_tls
                if site.bmc_verify_tls is not None
                else self._settings.redfish_verify_tls
            ),
            # The site's PEM text; the Redfish client falls back to NICO_REDFISH_CA_BUNDLE.
            ca_bundle=site.bmc_ca_bundle,
        )

    def _share_catalog(self, site: Site) -> None:
        """Hand the site's firmware catalog to the Redfish backend (it maps versions to images)."""
        backend: Any = self.backend("redfish")
        setter = getattr(backend, "set_firmware_catalog", None)
        if setter is not None:
            setter(str(site.id), site.firmware_catalog)

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


def effective_backend(
    tray_backend: str | None, rack_backend: str | None, settings: Settings
) -> str:
    """The tray's backend, else its rack's, else NICO_BACKEND."""
    return tray_backend or rack_backend or settings.backend


def _preferred_bmc(bmcs: list[Bmc]) -> Bmc | None:
    for kind in _BMC_PREFERENCE:
        for bmc in bmcs:
            if bmc.type.lower() == kind:
                return bmc
    return bmcs[0] if bmcs else None
