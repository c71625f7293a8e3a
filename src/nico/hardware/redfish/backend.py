"""The Redfish tray backend: power, reachability and firmware on real BMCs.

The engine's registry builds it with `RedfishBackend(settings)` and calls it one tray at
a time; the engine owns retries across calls, parallelism and the overall timeouts.
See docs/redfish.md for the reset-type table, fallbacks and the firmware catalog.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nico.config import Settings
from nico.domain import ComponentType, FirmwareComponent, PowerState
from nico.hardware.interface import (
    BmcEndpoint,
    BringUpState,
    Capability,
    FirmwareInventory,
    FirmwareJob,
    FirmwareJobState,
    HardwareError,
    TrayBackend,
    TrayRef,
    UnsupportedOperation,
)
from nico.hardware.redfish.catalog import FirmwareCatalog
from nico.hardware.redfish.client import RedfishClient
from nico.hardware.redfish.errors import AnswerLost, ResetOutcomeUnknown
from nico.hardware.redfish.inventory_walks import InventoryWalks
from nico.hardware.redfish.limits import commanding
from nico.hardware.redfish.reset_types import (
    SETTLED_STATE,
    ResetPlan,
    SendReset,
    WaitForPower,
    choose_reset_plan,
)
from nico.hardware.redfish.resources import (
    POWER_MODELS,
    UPDATE_SERVICE,
    PowerModel,
    ResetAction,
    allowable_from_action_info,
    managed_by,
    match_targets,
    member_path,
    member_uris,
    power_state_from_redfish,
    related_members,
    reset_action,
    reset_marker_of,
    running_version_member,
)
from nico.hardware.redfish.tasks import firmware_job_from_task

log = logging.getLogger(__name__)

CAPABILITIES: frozenset[Capability] = frozenset(
    {
        Capability.POWER_CONTROL,
        Capability.POWER_STATUS,
        Capability.REACHABILITY,
        Capability.FIRMWARE_CONTROL,
        Capability.FIRMWARE_STATUS,
        Capability.FIRMWARE_VERSION,
        # Consistency compares the versions `firmware_version` reads across trays.
        Capability.FIRMWARE_CONSISTENCY,
    }
)
# How often a fallback polls PowerState while it waits for Off.
POWER_POLL_SECONDS = 1.0
# How many operation keys are remembered for de-duplication in this process.
REMEMBERED_KEYS = 10_000
# A job id for an update the BMC finished before answering (no task to poll).
FINISHED_JOB_PREFIX = "finished:"
_OFF_RESET_TYPES = frozenset({"ForceOff", "GracefulShutdown"})
# Reset types that cycle the tray each time they are carried out: never sent twice.
CYCLING_RESET_TYPES = frozenset({"GracefulRestart", "ForceRestart", "PowerCycle", "FullPowerCycle"})
# A power shelf's Chassis also cuts and restores the AC it feeds (`ac_power_cycle`).
SHELF_CAPABILITIES = CAPABILITIES | {Capability.AC_POWER_CYCLE}
AC_POWER_CYCLE = "ac_power_cycle"


class _PowerTarget:
    """A tray's power resource as just read: where it is, its state, its Reset action."""

    def __init__(self, uri: str, body: dict[str, Any], action: ResetAction | None) -> None:
        self.uri = uri
        self.body = body
        self.action = action
        self.state = power_state_from_redfish(body.get("PowerState"))


class RedfishBackend:
    """`TrayBackend` over Redfish, one async client per BMC and credentials."""

    name = "redfish"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[tuple[str, ...], RedfishClient] = {}
        self._member_cache: dict[tuple[str, str], str] = {}
        self._catalogs: dict[str, FirmwareCatalog] = {}
        self._done_power_keys: OrderedDict[str, None] = OrderedDict()
        self._firmware_jobs: OrderedDict[str, str] = OrderedDict()
        self._key_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._walks = InventoryWalks()

    # --- capabilities -------------------------------------------------------------

    def capabilities(self, component_type: ComponentType) -> frozenset[Capability]:
        """Power, reachability and firmware for operable types (AC power cycle for power
        shelves); no bring-up over Redfish."""
        if component_type is ComponentType.POWERSHELF:
            return SHELF_CAPABILITIES
        return CAPABILITIES if component_type in POWER_MODELS else frozenset()

    def set_firmware_catalog(self, site_id: str, catalog: Mapping[str, Any] | None) -> None:
        """Give the backend a site's `firmware_catalog` (the registry calls this)."""
        self._catalogs[site_id] = FirmwareCatalog(catalog)

    # --- power ----------------------------------------------------------------------

    async def power_control(self, tray: TrayRef, code: str, *, operation_key: str) -> None:
        """Carry out a power code with the BMC's reset types, falling back when needed.

        Nothing is sent when no plan fits the BMC's allowable values, or when the tray
        already is in the state an on/off code asks for. A key that already succeeded
        in this process is not sent again (across processes the engine's ledger
        decides). A cycling reset whose answer is lost raises `ResetOutcomeUnknown`.
        """
        if code == AC_POWER_CYCLE and tray.type is not ComponentType.POWERSHELF:
            raise UnsupportedOperation(
                f"{code} is carried out by a PowerShelf's Chassis; {tray.name or tray.id} "
                f"is a {tray.type.value} tray"
            )
        async with self._once(operation_key):
            if operation_key in self._done_power_keys:
                return
            client = self._client(tray)
            model = self._power_model(tray)
            target = await self._read_power_target(client, tray, model)
            if target.action is None:
                raise UnsupportedOperation(
                    f"BMC {client.bmc} offers no {model.reset_action.lstrip('#')} on {target.uri}"
                )
            allowed = await self._allowed_reset_types(client, target.action)
            plan = choose_reset_plan(code, allowed)
            settled = SETTLED_STATE.get(code)
            if settled is not None and target.state == settled:
                log.info("tray %s already %s; %s is a no-op", tray.id, settled.value, code)
            else:
                await self._run_plan(client, tray, model, target, plan)
            _remember(self._done_power_keys, operation_key, None)

    async def power_status(self, tray: TrayRef) -> PowerState:
        client = self._client(tray)
        target = await self._read_power_target(client, tray, self._power_model(tray))
        return target.state

    async def reset_marker(self, tray: TrayRef) -> str | None:
        """The tray's `LastResetTime`, when its BMC reports one: the engine reads it before
        a cycle and after, so a cycle is seen to happen, and a cycle whose answer was cut
        off is known to have been carried out (or not) instead of "outcome unknown".
        None when the BMC does not report it (sushy-tools, many BMCs): then a cycle cut
        off before its answer fails as outcome unknown, never sent twice (docs/engine.md,
        "Verified outcomes")."""
        client = self._client(tray)
        target = await self._read_power_target(client, tray, self._power_model(tray))
        return reset_marker_of(target.body)

    async def reachable(self, tray: TrayRef) -> bool:
        """An authenticated GET of the tray's resource answers.

        No answer (or a 5xx) is False; an answer that refuses us (bad credentials, TLS
        not trusted, no such resource) is raised, since waiting will not fix it.
        """
        client = self._client(tray)
        try:
            await self._read_power_target(client, tray, self._power_model(tray))
        except HardwareError as exc:
            if exc.retryable:
                return False
            raise
        return True

    async def _run_plan(
        self,
        client: RedfishClient,
        tray: TrayRef,
        model: PowerModel,
        target: _PowerTarget,
        plan: ResetPlan,
    ) -> None:
        assert target.action is not None
        state = target.state
        if plan.is_fallback:
            log.info(
                "BMC %s lacks the preferred reset type for %s; using %s",
                client.bmc,
                plan.code,
                plan.describe(),
            )
        for step in plan.steps:
            if isinstance(step, WaitForPower):
                await self._wait_for_power(client, tray, model, target.uri, step.state, plan)
                state = step.state
                continue
            assert isinstance(step, SendReset)
            # In a sequence, an off step on a tray that is already off is skipped.
            sequence = len(plan.steps) > 1
            if sequence and step.reset_type in _OFF_RESET_TYPES and state == PowerState.OFF:
                continue
            action = f"{model.reset_action.lstrip('#')} {step.reset_type}"
            try:
                response = await client.request(
                    "POST", target.action.target, json={"ResetType": step.reset_type}
                )
            except AnswerLost as exc:
                if step.reset_type not in CYCLING_RESET_TYPES:
                    raise  # on/off again is harmless: a retry may resend it
                raise ResetOutcomeUnknown(
                    f"{exc} after sending {action}: it may have been carried out, so it "
                    "is not sent again"
                ) from None
            client.raise_for_status(response, action)
            log.info("BMC %s accepted %s for tray %s", client.bmc, action, tray.id)
            state = PowerState.UNKNOWN

    async def _wait_for_power(
        self,
        client: RedfishClient,
        tray: TrayRef,
        model: PowerModel,
        uri: str,
        wanted: PowerState,
        plan: ResetPlan,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.redfish_power_wait
        while True:
            body = await client.get_json(uri)
            if power_state_from_redfish(body.get("PowerState")) == wanted:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HardwareError(
                    f"BMC {client.bmc}: tray {tray.name or tray.id} did not read "
                    f"{wanted.value} within {self._settings.redfish_power_wait:g}s during "
                    f"{plan.code} ({plan.describe()})"
                )
            await asyncio.sleep(min(POWER_POLL_SECONDS, remaining))

    async def _read_power_target(
        self, client: RedfishClient, tray: TrayRef, model: PowerModel
    ) -> _PowerTarget:
        uri = await self._member_uri(client, tray, model.collection)
        body = await client.get_json(uri)
        canonical = body.get("@odata.id")
        return _PowerTarget(
            canonical if isinstance(canonical, str) else uri,
            body,
            reset_action(body, model.reset_action),
        )

    async def _allowed_reset_types(
        self, client: RedfishClient, action: ResetAction
    ) -> tuple[str, ...] | None:
        if action.allowed is not None:
            return action.allowed
        if action.action_info:
            return allowable_from_action_info(await client.get_json(action.action_info))
        return None

    async def _member_uri(self, client: RedfishClient, tray: TrayRef, collection: str) -> str:
        """The tray's member of a collection: `resource_id`, else the first member."""
        endpoint = self._endpoint(tray)
        if endpoint.resource_id:
            return member_path(collection, endpoint.resource_id)
        cache_key = (client.base_url, collection)
        cached = self._member_cache.get(cache_key)
        if cached is not None:
            return cached
        members = member_uris(await client.get_json(collection))
        if not members:
            raise HardwareError(f"BMC {client.bmc} lists no members in {collection}")
        self._member_cache[cache_key] = members[0]
        return members[0]

    # --- firmware -------------------------------------------------------------------

    async def firmware_start(
        self, tray: TrayRef, version: str | None, targets: tuple[str, ...], *, operation_key: str
    ) -> str:
        """`UpdateService.SimpleUpdate` with the catalog's image; returns the task to poll."""
        async with self._once(operation_key):
            known = self._firmware_jobs.get(operation_key)
            if known is not None:
                return known
            catalog = self._catalogs.get(tray.site_id, FirmwareCatalog(None))
            resolved_version, image = catalog.image_uri(tray.type, version)
            client = self._client(tray)
            service = await client.get_json(UPDATE_SERVICE)
            actions = service.get("Actions")
            action = (
                actions.get("#UpdateService.SimpleUpdate") if isinstance(actions, dict) else None
            )
            if not isinstance(action, dict) or not isinstance(action.get("target"), str):
                raise UnsupportedOperation(f"BMC {client.bmc} offers no UpdateService.SimpleUpdate")
            body: dict[str, Any] = {"ImageURI": image}
            if targets:
                members = await self._tray_inventory(client, tray)
                uris, missing = match_targets(members, targets)
                if missing:
                    names = ", ".join(str(m.get("Id")) for m in members) or "none"
                    raise HardwareError(
                        f"BMC {client.bmc} has no firmware component named "
                        f"{', '.join(missing)} for tray {tray.name or tray.id} "
                        f"(components: {names})",
                        retryable=False,
                    )
                body["Targets"] = uris
            response = await client.request("POST", action["target"], json=body)
            client.raise_for_status(response, f"UpdateService.SimpleUpdate to {resolved_version}")
            job_id = _task_reference(response.headers.get("Location"), response)
            log.info(
                "BMC %s started firmware %s for tray %s: %s",
                client.bmc,
                resolved_version,
                tray.id,
                job_id,
            )
            _remember(self._firmware_jobs, operation_key, job_id)
            return job_id

    async def firmware_status(self, tray: TrayRef, job_id: str) -> FirmwareJob:
        if job_id.startswith(FINISHED_JOB_PREFIX):
            return FirmwareJob(job_id, FirmwareJobState.COMPLETED, 100)
        client = self._client(tray)
        response = await client.request("GET", job_id)
        if response.status_code == 404:
            raise HardwareError(
                f"BMC {client.bmc} no longer knows firmware task {job_id}", retryable=False
            )
        client.raise_for_status(response, f"GET firmware task {job_id}")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        return firmware_job_from_task(job_id, response.status_code, body)

    async def firmware_version(self, tray: TrayRef) -> str:
        """The version of the tray's BMC firmware (else BIOS, else the first component)."""
        client = self._client(tray)
        member = running_version_member(await self._tray_inventory(client, tray))
        if member is None:
            raise HardwareError(
                f"BMC {client.bmc} reports no firmware version for tray {tray.name or tray.id}"
            )
        return str(member["Version"])

    async def firmware_inventory(self, tray: TrayRef) -> FirmwareInventory:
        """The tray's `UpdateService/FirmwareInventory` members (Name, else Id, and
        Version); members without a version string are left out."""
        client = self._client(tray)
        members = await self._tray_inventory(client, tray)
        main = running_version_member(members)
        if main is None:
            raise HardwareError(
                f"BMC {client.bmc} reports no firmware version for tray {tray.name or tray.id}"
            )
        components = tuple(
            FirmwareComponent(_member_name(m), m["Version"], _str_or_none(m.get("Id")))
            for m in members
            if isinstance(m.get("Version"), str)
        )
        return FirmwareInventory(components, str(main["Version"]))

    async def _tray_inventory(self, client: RedfishClient, tray: TrayRef) -> list[dict[str, Any]]:
        """FirmwareInventory members that belong to this tray (see `related_members`), as
        the BMC reports them after this call began.

        The collection walk is shared by the reads of every tray on the BMC (see
        `InventoryWalks`); a read that joined a walk started before it was asked GETs its
        own members again, so it never misses an update that finished in between."""
        asked = time.monotonic()
        walk = await self._walks.walk(self._client_key(tray), lambda: _walk_inventory(client))
        target = await self._read_power_target(client, tray, self._power_model(tray))
        related = [target.uri, *managed_by(target.body)]
        uri_of = {id(body): uri for uri, body in walk.members}
        mine = related_members([body for _, body in walk.members], related)
        if walk.started >= asked:
            return mine
        fresh = await asyncio.gather(*(client.get_json(uri_of[id(body)]) for body in mine))
        return related_members(list(fresh), related)

    # --- not over plain Redfish -----------------------------------------------------

    async def bring_up_control(self, tray: TrayRef) -> None:
        raise UnsupportedOperation("bring-up control is not available over the Redfish backend")

    async def bring_up_status(self, tray: TrayRef) -> BringUpState:
        raise UnsupportedOperation("bring-up status is not available over the Redfish backend")

    async def inject_expectation(self, tray: TrayRef) -> None:
        raise UnsupportedOperation("inject expectation is not available over the Redfish backend")

    # --- plumbing -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Delete Redfish sessions and close connections to every BMC."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _endpoint(self, tray: TrayRef) -> BmcEndpoint:
        if tray.bmc is None or not tray.bmc.address:
            raise HardwareError(
                f"tray {tray.name or tray.id} has no BMC address in inventory", retryable=False
            )
        return tray.bmc

    def _power_model(self, tray: TrayRef) -> PowerModel:
        model = POWER_MODELS.get(tray.type)
        if model is None:
            raise UnsupportedOperation(
                f"the Redfish backend does not operate {tray.type.value} trays"
            )
        return model

    def _client(self, tray: TrayRef) -> RedfishClient:
        key = self._client_key(tray)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = RedfishClient(self._endpoint(tray), self._settings)
        return client

    def _client_key(self, tray: TrayRef) -> tuple[str, ...]:
        """One BMC as reached with one set of credentials (one client, one shared walk)."""
        endpoint = self._endpoint(tray)
        return (
            endpoint.address,
            str(endpoint.port),
            endpoint.username or "",
            _digest(endpoint.password),
            str(endpoint.verify_tls),
            _digest(endpoint.ca_bundle),
        )

    @asynccontextmanager
    async def _once(self, operation_key: str) -> AsyncIterator[None]:
        """Serialize calls that share an operation key (a retry racing the original). A
        command's requests go ahead of status reads waiting for the BMC's cap."""
        lock, users = self._key_locks.get(operation_key, (asyncio.Lock(), 0))
        self._key_locks[operation_key] = (lock, users + 1)
        try:
            async with lock:
                with commanding():
                    yield
        finally:
            lock, users = self._key_locks[operation_key]
            if users <= 1:
                del self._key_locks[operation_key]
            else:
                self._key_locks[operation_key] = (lock, users - 1)


async def _walk_inventory(client: RedfishClient) -> list[tuple[str, dict[str, Any]]]:
    """Every `UpdateService/FirmwareInventory` member of the BMC: (URI, body)."""
    service = await client.get_json(UPDATE_SERVICE)
    inventory = service.get("FirmwareInventory")
    uri = inventory.get("@odata.id") if isinstance(inventory, dict) else None
    if not isinstance(uri, str):
        raise UnsupportedOperation(f"BMC {client.bmc} has no UpdateService.FirmwareInventory")
    uris = member_uris(await client.get_json(uri))
    members = await asyncio.gather(*(client.get_json(u) for u in uris))
    return list(zip(uris, members, strict=True))


def _task_reference(location: str | None, response: Any) -> str:
    """Where to poll an update: the Location header, else the Task in the body."""
    if location:
        parts = urlsplit(location)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return path or location
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("@odata.id"), str):
        return str(body["@odata.id"])
    return f"{FINISHED_JOB_PREFIX}{response.status_code}"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _member_name(member: dict[str, Any]) -> str:
    for key in ("Name", "Id"):
        value = member.get(key)
        if isinstance(value, str) and value:
            return value
    return str(member.get("@odata.id", "component"))


def _digest(value: str | None) -> str:
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > REMEMBERED_KEYS:
        store.popitem(last=False)


if TYPE_CHECKING:  # mypy proves the class satisfies the engine's protocol

    def _is_a_tray_backend(backend: RedfishBackend) -> TrayBackend:
        return backend
