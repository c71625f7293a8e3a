"""`nico rack|tray power|firmware|bringup`: start operations by name, optionally `--wait`.

Racks go by name (or id) to the batch endpoints (`PATCH /rack/power` with
`filter.names`), trays by `RACK/TRAY` (or id) as `filter.ids`, so one request, one
idempotency key and one answer cover every rack named; `--all` is the API's `all: true`.
Without `--wait` the task ids are printed one a line (for `$(...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nico.cli.http import (
    DEFAULT_API_URL,
    DEFAULT_ORG,
    ApiTarget,
    ApiUrl,
    Org,
    Site,
    Token,
    connect,
    expect,
    run,
)
from nico.cli.inventory import rack_app, tray_app
from nico.cli.output import Format, OutputOption, dump
from nico.cli.resolve import SiteView, rule_id
from nico.cli.watch import watch

if TYPE_CHECKING:
    import httpx

# The API's power states (nico.domain.POWER_STATES; not imported: the CLI starts without
# the server's modules). Any casing is accepted and sent in this spelling.
POWER_STATES = ("On", "Off", "Cycle", "ForceOff", "ForceCycle", "ACPowerCycle")
_STATE_BY_LOWER = {s.lower(): s for s in POWER_STATES}
STATE_HELP = "On, Off, Cycle, ForceOff, ForceCycle or ACPowerCycle (any casing)."

Racks = Annotated[list[str] | None, typer.Argument(help="Rack names or ids.", show_default=False)]
Trays = Annotated[
    list[str] | None,
    typer.Argument(help="Trays as RACK/TRAY (rack-01/compute-07) or ids.", show_default=False),
]
State = Annotated[str, typer.Argument(help=STATE_HELP)]
AllFlag = Annotated[bool, typer.Option("--all", help="Every rack of the site.")]
RuleOpt = Annotated[
    str | None, typer.Option("--rule", help="Run this rule (name or id) instead of the default.")
]
QueueOpt = Annotated[
    bool, typer.Option("--queue", help="If the rack is busy, wait in its queue instead of 409.")
]
QueueTimeoutOpt = Annotated[
    str | None, typer.Option("--queue-timeout", help='How long to wait queued ("30m"; --queue).')
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Task description.")]
KeyOpt = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Retrying with the same key returns the same tasks."),
]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Then watch the tasks until they end (exit 0/1/2).")
]


@dataclass(frozen=True)
class Options:
    """What every operation command takes besides its targets."""

    rule: str | None
    queue: bool
    queue_timeout: str | None
    description: str | None
    key: str | None
    wait: bool
    output: Format

    async def body(self, client: httpx.AsyncClient, view: SiteView) -> dict[str, Any]:
        body: dict[str, Any] = dict(view.site)
        if self.rule is not None:
            body["ruleId"] = await rule_id(client, view, self.rule)
        if self.queue or self.queue_timeout is not None:
            body["conflictStrategy"] = "queue"
        if self.queue_timeout is not None:
            body["queueTimeout"] = self.queue_timeout
        if self.description is not None:
            body["description"] = self.description
        return body


def _power_state(state: str) -> str:
    found = _STATE_BY_LOWER.get(state.lower())
    if found is None:
        raise typer.BadParameter(f"must be one of {', '.join(POWER_STATES)}", param_hint="STATE")
    return found


def _scope(names: list[str], all_flag: bool, what: str) -> None:
    if names and all_flag:
        raise typer.BadParameter(f"name {what} or pass --all, not both", param_hint="--all")
    if not names and not all_flag:
        raise typer.BadParameter(
            f"name at least one {what[:-1]}, or pass --all for the whole site",
            param_hint=what.upper(),
        )


async def _rack_filter(view: SiteView, racks: list[str], all_flag: bool) -> dict[str, Any]:
    if all_flag:
        return {"all": True}
    return {"filter": {"names": [view.rack_name(r) for r in racks]}}


async def _tray_filter(
    view: SiteView, trays: list[str], all_flag: bool, rack: str | None, kind: str | None
) -> dict[str, Any]:
    if all_flag:
        return {"all": True}
    flt: dict[str, Any] = {}
    if trays:
        flt["ids"] = await view.tray_ids(trays, rack)
    elif rack is not None:
        flt["rackId"] = view.rack_id(rack)
    if kind is not None:
        flt["type"] = kind
    return {"filter": flt}


async def submit(
    client: httpx.AsyncClient,
    view: SiteView,
    method: str,
    path: str,
    body: dict[str, Any],
    key: str | None,
) -> list[str]:
    headers = {"Idempotency-Key": key} if key else {}
    response = await client.request(method, f"{view.base}{path}", json=body, headers=headers)
    ids: list[str] = [str(i) for i in expect(response, 200)["taskIds"]]
    return ids


def operate(
    api: ApiTarget,
    site: str | None,
    opts: Options,
    method: str,
    path: str,
    build: Any,
) -> None:
    """Submit (`build(view)` gives the body's targets and fields), print the task ids or
    watch them, and end with the exit code."""

    async def work() -> int:
        async with api.client() as client:
            view = await SiteView.load(client, api.org, site)
            body = await opts.body(client, view) | await build(view)
            ids = await submit(client, view, method, path, body, opts.key)
            if not opts.wait:
                if opts.output is Format.TABLE:
                    for task_id in ids:
                        typer.echo(task_id)
                else:
                    dump({"taskIds": ids}, opts.output)
                return 0
            return await watch(client, view.base, view.site_id, ids)

    code = run(work())
    if code:
        raise typer.Exit(code)


def _options(
    rule: str | None,
    queue: bool,
    queue_timeout: str | None,
    description: str | None,
    key: str | None,
    wait: bool,
    output: Format,
) -> Options:
    return Options(rule, queue, queue_timeout, description, key, wait, output)


@rack_app.command("power")
def rack_power(
    racks: Racks = None,
    state: State = "",
    all_racks: AllFlag = False,
    rule: RuleOpt = None,
    queue: QueueOpt = False,
    queue_timeout: QueueTimeoutOpt = None,
    description: DescriptionOpt = None,
    idempotency_key: KeyOpt = None,
    wait: WaitOpt = False,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Power racks: `nico rack power rack-01 rack-02 on`, `nico rack power --all off`."""
    names, state = _split_state(racks, state)
    _scope(names, all_racks, "racks")
    opts = _options(rule, queue, queue_timeout, description, idempotency_key, wait, output)

    async def build(view: SiteView) -> dict[str, Any]:
        return {"state": state} | await _rack_filter(view, names, all_racks)

    operate(connect(api_url, org, token), site, opts, "PATCH", "/rack/power", build)


def _split_state(targets: list[str] | None, state: str) -> tuple[list[str], str]:
    """Click gives the variadic targets every word, the state included: the last is it."""
    words = list(targets or []) + ([state] if state else [])
    if not words:
        raise typer.BadParameter(f"missing: {STATE_HELP}", param_hint="STATE")
    return words[:-1], _power_state(words[-1])


TypeOpt = Annotated[
    str | None, typer.Option("--type", help="Only trays of this type (Compute, NVLSwitch...).")
]
RackOpt = Annotated[
    str | None,
    typer.Option("--rack", help="Only this rack's trays; or the rack of bare tray names."),
]


@tray_app.command("power")
def tray_power(
    trays: Trays = None,
    state: State = "",
    rack: RackOpt = None,
    kind: TypeOpt = None,
    all_trays: Annotated[bool, typer.Option("--all", help="Every tray of the site.")] = False,
    rule: RuleOpt = None,
    queue: QueueOpt = False,
    queue_timeout: QueueTimeoutOpt = None,
    description: DescriptionOpt = None,
    idempotency_key: KeyOpt = None,
    wait: WaitOpt = False,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Power trays: `nico tray power rack-01/compute-07 cycle`, or `--rack R [--type T]`."""
    names, state = _split_state(trays, state)
    if not (rack or kind):
        _scope(names, all_trays, "trays")
    opts = _options(rule, queue, queue_timeout, description, idempotency_key, wait, output)

    async def build(view: SiteView) -> dict[str, Any]:
        return {"state": state} | await _tray_filter(view, names, all_trays, rack, kind)

    operate(connect(api_url, org, token), site, opts, "PATCH", "/tray/power", build)


VersionOpt = Annotated[
    str | None,
    typer.Option("--version", help="Firmware version from the site's catalog (default: newest)."),
]
CodeOpt = Annotated[
    str, typer.Option("--code", help="upgrade, downgrade or rollback.", case_sensitive=False)
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option("--target", help="Only this firmware component (bmc, bios...); repeatable."),
]


OverrideVersionOpt = Annotated[
    bool,
    typer.Option(
        "--override-version-check",
        help="Also reflash trays whose BMC already reports the version (default: they are "
        "skipped and reported as skipped).",
    ),
]


def _firmware(
    version: str | None, code: str, targets: list[str] | None, override: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"operationCode": code}
    if version is not None:
        body["version"] = version
    if targets:
        body["targets"] = targets
    if override:
        body["overrideVersionCheck"] = True
    return body


@rack_app.command("firmware")
def rack_firmware(
    racks: Racks = None,
    version: VersionOpt = None,
    code: CodeOpt = "upgrade",
    target: TargetOpt = None,
    override_version_check: OverrideVersionOpt = False,
    all_racks: AllFlag = False,
    rule: RuleOpt = None,
    queue: QueueOpt = False,
    queue_timeout: QueueTimeoutOpt = None,
    description: DescriptionOpt = None,
    idempotency_key: KeyOpt = None,
    wait: WaitOpt = False,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Update racks' firmware: `nico rack firmware rack-01 --version 2.1.0`."""
    names = list(racks or [])
    _scope(names, all_racks, "racks")
    opts = _options(rule, queue, queue_timeout, description, idempotency_key, wait, output)

    async def build(view: SiteView) -> dict[str, Any]:
        body = _firmware(version, code, target, override_version_check)
        return body | await _rack_filter(view, names, all_racks)

    operate(connect(api_url, org, token), site, opts, "PATCH", "/rack/firmware", build)


@tray_app.command("firmware")
def tray_firmware(
    trays: Trays = None,
    version: VersionOpt = None,
    code: CodeOpt = "upgrade",
    target: TargetOpt = None,
    override_version_check: OverrideVersionOpt = False,
    rack: RackOpt = None,
    kind: TypeOpt = None,
    all_trays: Annotated[bool, typer.Option("--all", help="Every tray of the site.")] = False,
    rule: RuleOpt = None,
    queue: QueueOpt = False,
    queue_timeout: QueueTimeoutOpt = None,
    description: DescriptionOpt = None,
    idempotency_key: KeyOpt = None,
    wait: WaitOpt = False,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Update trays' firmware: `nico tray firmware rack-01/compute-07 --version 2.1.0`."""
    names = list(trays or [])
    if not (rack or kind):
        _scope(names, all_trays, "trays")
    opts = _options(rule, queue, queue_timeout, description, idempotency_key, wait, output)

    async def build(view: SiteView) -> dict[str, Any]:
        flt = await _tray_filter(view, names, all_trays, rack, kind)
        return _firmware(version, code, target, override_version_check) | flt

    operate(connect(api_url, org, token), site, opts, "PATCH", "/tray/firmware", build)


@rack_app.command("bringup")
def rack_bringup(
    racks: Racks = None,
    ingest: Annotated[
        bool, typer.Option("--ingest", help="Run the ingest rule instead of bring_up.")
    ] = False,
    all_racks: AllFlag = False,
    rule: RuleOpt = None,
    queue: QueueOpt = False,
    queue_timeout: QueueTimeoutOpt = None,
    description: DescriptionOpt = None,
    idempotency_key: KeyOpt = None,
    wait: WaitOpt = False,
    output: OutputOption = Format.TABLE,
    site: Site = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    org: Org = DEFAULT_ORG,
    token: Token = None,
) -> None:
    """Bring racks up: `nico rack bringup rack-01 --wait`."""
    names = list(racks or [])
    _scope(names, all_racks, "racks")
    opts = _options(rule, queue, queue_timeout, description, idempotency_key, wait, output)
    code = "ingest" if ingest else "bring_up"

    async def build(view: SiteView) -> dict[str, Any]:
        return {"operationCode": code} | await _rack_filter(view, names, all_racks)

    operate(connect(api_url, org, token), site, opts, "POST", "/rack/bringup", build)
