"""Reading Redfish resources: power state, Reset actions, firmware inventory members.

Pure functions over already fetched JSON, so the rules that pick a member or a reset
type are tested without a BMC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nico.domain import ComponentType, PowerState

SYSTEMS = "/redfish/v1/Systems"
CHASSIS = "/redfish/v1/Chassis"
UPDATE_SERVICE = "/redfish/v1/UpdateService"


@dataclass(frozen=True, slots=True)
class PowerModel:
    """Where a tray type's power lives: its collection and the Reset action's name."""

    collection: str
    reset_action: str


# Compute trays are ComputerSystems; switch and power shelf trays are powered through
# their Chassis (their BMC's Manager is the BMC itself, whose reset is not a tray reset).
POWER_MODELS: dict[ComponentType, PowerModel] = {
    ComponentType.COMPUTE: PowerModel(SYSTEMS, "#ComputerSystem.Reset"),
    ComponentType.NVLSWITCH: PowerModel(CHASSIS, "#Chassis.Reset"),
    ComponentType.POWERSHELF: PowerModel(CHASSIS, "#Chassis.Reset"),
}

_POWER_STATES = {
    "On": PowerState.ON,
    "Off": PowerState.OFF,
    "PoweringOn": PowerState.POWERING_ON,
    "PoweringOff": PowerState.POWERING_OFF,
    # A paused system still has power applied.
    "Paused": PowerState.ON,
}


def power_state_from_redfish(value: Any) -> PowerState:
    """`PowerState` as the BMC reports it; absent or unknown values read `Unknown`."""
    return (
        _POWER_STATES.get(value, PowerState.UNKNOWN)
        if isinstance(value, str)
        else (PowerState.UNKNOWN)
    )


@dataclass(frozen=True, slots=True)
class ResetAction:
    """A resource's Reset action: where to POST, and what it says it accepts."""

    target: str
    allowed: tuple[str, ...] | None
    action_info: str | None


def reset_marker_of(resource: dict[str, Any]) -> str | None:
    """The resource's own record of its last reset, `LastResetTime` (ComputerSystem
    v1_13+, as BMCs that track it report it): it moves when a restart or reset is
    carried out, so a cycle can be seen to have happened. None when the BMC does not
    report it (sushy-tools does not; `BootProgress.LastStateTime` is not used: it also
    moves as a host boots without any reset)."""
    value = resource.get("LastResetTime")
    return f"LastResetTime {value}" if isinstance(value, str) and value else None


def reset_action(resource: dict[str, Any], action_name: str) -> ResetAction | None:
    """The named Reset action of a resource, or None when it has none."""
    actions = resource.get("Actions")
    action = actions.get(action_name) if isinstance(actions, dict) else None
    if not isinstance(action, dict) or not isinstance(action.get("target"), str):
        return None
    allowed = action.get("ResetType@Redfish.AllowableValues")
    info = action.get("@Redfish.ActionInfo")
    return ResetAction(
        target=action["target"],
        allowed=_strings(allowed) if isinstance(allowed, list) else None,
        action_info=info if isinstance(info, str) else None,
    )


def allowable_from_action_info(info: dict[str, Any]) -> tuple[str, ...] | None:
    """`Parameters[Name=ResetType].AllowableValues` of an ActionInfo resource."""
    parameters = info.get("Parameters")
    if isinstance(parameters, list):
        for parameter in parameters:
            if isinstance(parameter, dict) and parameter.get("Name") == "ResetType":
                values = parameter.get("AllowableValues")
                return _strings(values) if isinstance(values, list) else None
    return None


def member_uris(collection: dict[str, Any]) -> list[str]:
    members = collection.get("Members")
    if not isinstance(members, list):
        return []
    return [
        m["@odata.id"]
        for m in members
        if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)
    ]


def managed_by(resource: dict[str, Any]) -> list[str]:
    """The Managers (BMCs) a resource names in `Links.ManagedBy`."""
    links = resource.get("Links")
    managers = links.get("ManagedBy") if isinstance(links, dict) else None
    if not isinstance(managers, list):
        return []
    return [
        m["@odata.id"]
        for m in managers
        if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)
    ]


def member_path(collection: str, resource_id: str) -> str:
    """The URI of a member: a full `/redfish/...` path is taken as is."""
    if resource_id.startswith("/redfish/"):
        return resource_id
    return f"{collection}/{resource_id.strip('/')}"


# --- firmware inventory ------------------------------------------------------------


def _tokens(text: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", text.lower())) - {""}


def _label(member: dict[str, Any]) -> str:
    return f"{member.get('Id', '')} {member.get('Name', '')}"


def related_members(
    members: Sequence[dict[str, Any]], related: Iterable[str]
) -> list[dict[str, Any]]:
    """The inventory members that belong to the tray's resources (`RelatedItem`).

    A BMC serving several systems tags each member with what it belongs to; a BMC that
    tags nothing serves one tray, so every member is the tray's.
    """
    wanted = {uri.rstrip("/") for uri in related}
    tagged = [m for m in members if isinstance(m.get("RelatedItem"), list)]
    if not tagged:
        return list(members)
    mine = []
    for member in tagged:
        items = member["RelatedItem"]
        uris = {i.get("@odata.id", "").rstrip("/") for i in items if isinstance(i, dict)}
        if uris & wanted:
            mine.append(member)
    untagged = [m for m in members if not isinstance(m.get("RelatedItem"), list)]
    return mine or untagged


def match_targets(
    members: Sequence[dict[str, Any]], targets: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(member URIs for the targets, targets no member matched).

    A target names members by Id or Name, case-insensitively, or by a word in them
    (`bmc` matches `HGX_FW_BMC_0`); a target matching several members takes them all.
    """
    uris: list[str] = []
    missing: list[str] = []
    for target in targets:
        wanted = target.strip().lower()
        found = [
            m
            for m in members
            if wanted in {str(m.get("Id", "")).lower(), str(m.get("Name", "")).lower()}
            or wanted in _tokens(_label(m))
        ]
        if not found:
            missing.append(target)
        for member in found:
            uri = member.get("@odata.id")
            if isinstance(uri, str) and uri not in uris:
                uris.append(uri)
    return uris, missing


def running_version_member(members: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The member whose version is the tray's firmware version: BMC, else BIOS, else first."""
    for word in ("bmc", "bios"):
        for member in members:
            if word in _tokens(_label(member)) and isinstance(member.get("Version"), str):
                return member
    for member in members:
        if isinstance(member.get("Version"), str):
            return member
    return None


def _strings(values: list[Any]) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str))
