"""The hardware backend contract: what the engine may ask of a tray, per capability.

Every backend (simulator, Redfish) implements `TrayBackend`. A backend declares the
capabilities it has for each component type so a rule needing one it lacks fails the
task before anything is touched (SPEC §7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from nico.domain import ComponentType, FirmwareComponent, PowerState


class Capability(StrEnum):
    POWER_CONTROL = "PowerControl"
    POWER_STATUS = "PowerStatus"
    REACHABILITY = "Reachability"
    FIRMWARE_CONTROL = "FirmwareControl"
    FIRMWARE_STATUS = "FirmwareStatus"
    FIRMWARE_VERSION = "FirmwareVersion"
    FIRMWARE_CONSISTENCY = "FirmwareConsistency"
    BRING_UP_CONTROL = "BringUpControl"
    BRING_UP_STATUS = "BringUpStatus"
    INJECT_EXPECTATION = "InjectExpectation"
    # Cut a power shelf's AC output and restore it (the `ac_power_cycle` code): every
    # tray behind the shelf goes through Off and back.
    AC_POWER_CYCLE = "ACPowerCycle"


@dataclass(frozen=True, slots=True)
class BmcEndpoint:
    """How to reach a tray's BMC. `password` is decrypted only for the call that needs it."""

    address: str
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    mac_address: str | None = None
    # Redfish resource id of the system/chassis/manager this tray maps to, when the
    # BMC hosts several (e.g. the sushy-tools emulator); None means discover the first.
    resource_id: str | None = None
    # TLS for this BMC: the site's setting, else NICO_REDFISH_VERIFY_TLS / _CA_BUNDLE.
    verify_tls: bool = True
    ca_bundle: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TrayRef:
    """Everything a backend needs to act on one tray, resolved from inventory."""

    id: str
    rack_id: str
    site_id: str
    type: ComponentType
    name: str
    backend: str
    bmc: BmcEndpoint | None = None
    firmware_version: str | None = None
    component_id: str | None = None


class FirmwareJobState(StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class FirmwareJob:
    """Progress of a firmware update the backend started."""

    job_id: str
    state: FirmwareJobState
    percent: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class FirmwareInventory:
    """Every firmware component a tray's BMC lists, and which version is the tray's
    main one (what `firmware_version` answers)."""

    components: tuple[FirmwareComponent, ...]
    version: str


class BringUpState(StrEnum):
    NOT_DISCOVERED = "NotDiscovered"
    WAITING_FOR_INGESTION = "WaitingForIngestion"
    INGESTED = "Ingested"


class HardwareError(Exception):
    """A backend call failed; the text is safe to show (never contains credentials).
    `unreachable`: the BMC did not answer at all (the state sync then skips that tray's
    other reads for the pass instead of waiting out each one)."""

    def __init__(self, message: str, *, retryable: bool = True, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.unreachable = unreachable


class UnsupportedOperation(HardwareError):
    """The backend cannot do this for this tray (e.g. a ResetType the BMC lacks)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class TrayBackend(Protocol):
    """Operations on one tray at a time; the engine handles parallelism and retries."""

    name: str

    def capabilities(self, component_type: ComponentType) -> frozenset[Capability]:
        """What this backend can do for trays of this type."""
        ...

    async def power_control(self, tray: TrayRef, code: str, *, operation_key: str) -> None:
        """Send a power operation (one of `nico.domain.POWER_CODES`). `operation_key` dedupes
        retries. `ac_power_cycle` is sent to a PowerShelf only, by backends declaring
        `Capability.AC_POWER_CYCLE` for it."""
        ...

    async def power_status(self, tray: TrayRef) -> PowerState:
        """Current observed power state."""
        ...

    async def reachable(self, tray: TrayRef) -> bool:
        """Whether the tray's BMC answers an authenticated request."""
        ...

    async def reset_marker(self, tray: TrayRef) -> str | None:
        """A value that moves each time the tray really goes through a power cycle (a
        boot counter, a last-reset time), or None when the BMC exposes none. The engine
        reads it before and after a restart or reset, so a cycle is observed, not assumed."""
        ...

    async def firmware_start(
        self, tray: TrayRef, version: str | None, targets: tuple[str, ...], *, operation_key: str
    ) -> str:
        """Start a firmware update and return a job id; idempotent per `operation_key`."""
        ...

    async def firmware_status(self, tray: TrayRef, job_id: str) -> FirmwareJob:
        """Progress of a started update."""
        ...

    async def firmware_version(self, tray: TrayRef) -> str:
        """The running firmware version."""
        ...

    async def firmware_inventory(self, tray: TrayRef) -> FirmwareInventory:
        """Every firmware component the tray's BMC lists (BMC, BIOS/UEFI, CPLD, NIC, ...)
        with its running version. A read: never changes anything on the tray."""
        ...

    async def bring_up_control(self, tray: TrayRef) -> None:
        """Open the tray's power-on / ingestion gate."""
        ...

    async def bring_up_status(self, tray: TrayRef) -> BringUpState:
        """Where the tray is in bring-up."""
        ...

    async def inject_expectation(self, tray: TrayRef) -> None:
        """Register the tray as expected inventory with its manager."""
        ...

    async def aclose(self) -> None:
        """Release connections and sessions."""
        ...
