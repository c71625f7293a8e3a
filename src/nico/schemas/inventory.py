"""Rack, tray and BMC wire models (upstream-rest-contract §3.1, §3.2, §3.4).

`POST /rack` is our addition (upstream ingests racks through other services): one body
carries the rack, its trays and their BMCs. BMC credentials are write-only: the
password is a `SecretStr` on input and appears in no response model.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from nico.domain import ComponentType
from nico.schemas.common import RequestModel, ResponseModel, UtcTimestamp

Backend = Literal["simulator", "redfish"]
BACKENDS: tuple[str, ...] = ("simulator", "redfish")

# Stored BMC type -> wire name (upstream's enum spelling).
BMC_TYPES: dict[str, str] = {
    "Host": "BmcTypeHost",
    "Dpu": "BmcTypeDpu",
    "Unknown": "BmcTypeUnknown",
}
_BMC_TYPE_ALIASES = {
    key.lower(): stored
    for stored, wire in BMC_TYPES.items()
    for key in (stored, wire, wire.removeprefix("BmcType"))
}
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

TEXT_MAX = 256
PASSWORD_MAX = 1024


def parse_backend(value: object) -> object:
    """Accept any casing; anything else is left for the Literal check to refuse."""
    return value.strip().lower() if isinstance(value, str) else value


def normalize_mac(value: str) -> str:
    """`aa-bb-cc-dd-ee-ff` / `aabbccddeeff` -> `AA:BB:CC:DD:EE:FF` (one spelling, one key)."""
    value = value.strip()
    if not _MAC.match(value):
        raise ValueError("must be a MAC address like AA:BB:CC:DD:EE:FF")
    digits = re.sub(r"[:-]", "", value).upper()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_bmc_address(value: str) -> str:
    """An IP, a host name, either with `:port`, or an `http(s)://host[:port]` URL (plain
    http is for labs and emulators). Credentials never ride in the address."""
    value = value.strip()
    bmc_address_port(value)
    return value


def bmc_address_port(value: str) -> int | None:
    """The port a valid BMC address names (`10.0.0.1:8443` -> 8443), None when it names
    none; ValueError when it is not a BMC address."""
    value = value.strip()
    bad = ValueError("must be an IP address, a host name or an http(s)://host[:port] URL")
    if "://" in value:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials: use username and password")
        if parts.scheme.lower() not in ("http", "https") or parts.path not in ("", "/"):
            raise bad
        if parts.query or parts.fragment or not parts.hostname:
            raise bad
        host, port = parts.hostname, _port(parts)
    elif value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = _port_text(rest[1:]) if rest.startswith(":") else (None if not rest else -1)
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port_text(port_text)
    else:
        host, port = value, None
    if port == -1 or not _is_host(host):
        raise bad
    return port


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return -1
    return -1 if port is not None and not 1 <= port <= 65535 else port


def _port_text(text: str) -> int:
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else -1


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return 0 < len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


# --- requests --------------------------------------------------------------------------


class BmcInput(RequestModel):
    type: str = Field("Host", description="BmcTypeHost (default), BmcTypeDpu or BmcTypeUnknown.")
    mac_address: str | None = Field(None, description="Normalized to upper case with colons.")
    ip_address: str | None = Field(
        None,
        max_length=TEXT_MAX,
        description="IP address or host name (optionally :port), or http(s)://host[:port] "
        "for labs and emulators; https is assumed.",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Redfish port; default: the one in ipAddress, else 443 (80 for http://). "
        "Must agree with a port written in ipAddress.",
    )
    resource_id: str | None = Field(
        None, max_length=TEXT_MAX, description="Redfish system/chassis id when the BMC has several."
    )
    username: str | None = Field(None, max_length=TEXT_MAX, description="Write-only.")
    password: SecretStr | None = Field(
        None, description="Write-only: stored encrypted, never returned."
    )

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> str:
        found = _bmc_type(value)
        if found is None:
            raise ValueError(f"must be one of [{' '.join(BMC_TYPES.values())}]")
        return found

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) > PASSWORD_MAX:
            raise ValueError(f"must be at most {PASSWORD_MAX} characters")
        return value

    @field_validator("mac_address")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else normalize_mac(value)

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value is None else check_bmc_address(value)

    @field_validator("port")
    @classmethod
    def _port_agrees(cls, value: int | None, info: ValidationInfo) -> int | None:
        """`port` would silently win over a different port in `ipAddress` (the Redfish
        client takes `port` first), so the two must agree."""
        address = info.data.get("ip_address")
        written = None if value is None or address is None else bmc_address_port(address)
        if written is not None and written != value:
            raise ValueError(
                f"{value} disagrees with port {written} in ipAddress: give the port once, "
                "or the same port in both"
            )
        return value


def _bmc_type(value: object) -> str | None:
    return _BMC_TYPE_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None


class Position(RequestModel):
    slot_id: int = Field(0, ge=0, le=2**31 - 1, description="Rack slot (U position).")
    tray_idx: int = Field(0, ge=0, le=2**31 - 1, description="Index of the tray of its type.")
    host_id: int = Field(0, ge=0, le=2**31 - 1, description="Host within the tray.")


class Location(RequestModel):
    region: str = Field("", max_length=TEXT_MAX)
    datacenter: str = Field("", max_length=TEXT_MAX)
    room: str = Field("", max_length=TEXT_MAX)
    position: str = Field("", max_length=TEXT_MAX)


class TrayInput(RequestModel):
    """One component of an imported rack."""

    type: ComponentType = Field(
        ..., description="Compute, NVLSwitch (alias NVSwitch), PowerShelf, TorSwitch, UMS, CDU."
    )
    name: str = Field(..., max_length=TEXT_MAX)
    manufacturer: str = Field("", max_length=TEXT_MAX)
    model: str = Field("", max_length=TEXT_MAX)
    serial_number: str = Field(..., max_length=TEXT_MAX, description="Unique per manufacturer.")
    component_id: str | None = Field(None, max_length=TEXT_MAX, description="External id.")
    description: str = Field("", max_length=4096)
    firmware_version: str = Field("", max_length=128)
    position: Position | None = None
    bmcs: list[BmcInput] = Field(default_factory=list, max_length=8)
    backend: Backend | None = Field(None, description="Overrides the rack's backend.")

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> ComponentType:
        return ComponentType.parse(value)

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: object) -> object:
        return parse_backend(value)

    @field_validator("name", "serial_number")
    @classmethod
    def _stripped(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value


class RackCreateRequest(RequestModel):
    """Import a rack with its trays and BMCs into a site."""

    site_id: str | None = Field(None, description="Site the rack belongs to (required).")
    name: str = Field(..., max_length=TEXT_MAX, description="Unique in the site.")
    manufacturer: str = Field("", max_length=TEXT_MAX)
    model: str = Field("", max_length=TEXT_MAX)
    serial_number: str = Field("", max_length=TEXT_MAX)
    description: str = Field("", max_length=4096)
    location: Location | None = None
    backend: Backend | None = Field(None, description="simulator or redfish; default NICO_BACKEND.")
    components: list[TrayInput] = Field(default_factory=list, max_length=1024)

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: object) -> object:
        return parse_backend(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value


# --- responses -------------------------------------------------------------------------


class BmcOut(ResponseModel):
    """A BMC as the API shows it: where it is, never how to log in."""

    type: str
    mac_address: str
    ip_address: str
    port: int | None = None
    resource_id: str | None = None
    credentials_set: bool = Field(description="Whether a username and password are stored.")


class PositionOut(ResponseModel):
    slot_id: int
    tray_idx: int
    host_id: int


class LocationOut(ResponseModel):
    region: str
    datacenter: str
    room: str
    position: str


class RackComponent(ResponseModel):
    """A tray as embedded in a Rack (`includeComponents=true`), upstream field order."""

    id: uuid.UUID
    component_id: str
    rack_id: uuid.UUID
    type: str
    name: str
    serial_number: str
    manufacturer: str
    model: str
    description: str
    firmware_version: str
    slot_id: int
    tray_idx: int
    host_id: int
    bmcs: list[BmcOut]
    power_state: str
    backend: str


class TaskStats(ResponseModel):
    """Open tasks of a rack or tray: accepted and not running yet (`Pending`, or
    `Waiting` in its queue), and running now."""

    pending_task_count: int = Field(description="Tasks Pending or Waiting")
    active_task_count: int = Field(description="Tasks Running")


class Rack(ResponseModel):
    id: uuid.UUID
    name: str
    manufacturer: str
    model: str
    serial_number: str
    description: str
    location: LocationOut | None = None
    components: list[RackComponent] | None = None
    site_id: uuid.UUID
    backend: str
    task_stats: TaskStats | None = None
    created: UtcTimestamp
    updated: UtcTimestamp


class Tray(ResponseModel):
    id: uuid.UUID
    component_id: str
    type: str
    name: str
    manufacturer: str
    model: str
    serial_number: str
    description: str
    firmware_version: str
    power_state: str
    position: PositionOut
    bmcs: list[BmcOut]
    rack_id: uuid.UUID
    rack_name: str
    backend: str
    task_stats: TaskStats | None = None
