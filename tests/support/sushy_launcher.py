"""Run the sushy-tools Redfish emulator (fake driver) with what a real BMC has and it lacks.

Test support only — never product code. Started by `tests.support.sushy.SushyEmulator`
as `python -m tests.support.sushy_launcher CONFIG.json`; prints `{"port": N}` once it
listens on 127.0.0.1 (port 0: the OS picks a free one).

On top of sushy-tools it adds:
- a fixed power delay instead of the fake driver's random 1-11 s, and a log of every
  ResetType received and every power state a system or chassis went through;
- `PowerCycle` (the fake driver lacks it) and per-run `ResetType@Redfish.AllowableValues`
  for systems (inline, or behind an `@Redfish.ActionInfo`), enforced with a Redfish
  `ActionParameterValueNotInList` error as BMCs answer;
- chassis power: `PowerState` and `Chassis.Reset` (sushy's chassis are always On);
- a Redfish SessionService (`X-Auth-Token`), checked against the same htpasswd file;
- firmware: `UpdateService.SimpleUpdate` that installs the version named in the image
  file name (`name-<version>.bin`), a FirmwareInventory per system and chassis
  (`<name>-BMC`, `<name>-BIOS`) and Tasks that progress over `firmware_duration`;
  an image URI containing `corrupt` ends its task in `Exception`;
- with `last_reset_time`, a system's `LastResetTime` (as BMCs that have it report it),
  moved by every reset that restarts or powers on the system;
- `/_emulator/*` control endpoints (no auth): counters (requests in flight, the most
  seen at once, logins, live sessions), fault injection (`status` + `Retry-After` + an
  ExtendedInfo message for the next N matching requests), session expiry, a per-request
  delay so concurrency can be observed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import bcrypt

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Wsgi = Callable[[Environ, StartResponse], Iterable[bytes]]

SESSIONS_PATH = "/redfish/v1/SessionService/Sessions"
# LastResetTime of a system never reset since the emulator started.
STARTED_AT = datetime.now(UTC).isoformat()
INVENTORY_PATH = "/redfish/v1/UpdateService/FirmwareInventory"
TASKS_PATH = "/redfish/v1/TaskService/Tasks"


def redfish_error(message: str, message_id: str = "Base.1.8.GeneralError") -> dict[str, Any]:
    """A Redfish error body whose ExtendedInfo carries the specific message, as BMCs send."""
    return {
        "error": {
            "code": message_id,
            "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": message_id,
                    "Message": message,
                    "Severity": "Warning",
                }
            ],
        }
    }


class EmulatorState:
    """Everything the additions keep, guarded by one lock (the server is threaded)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.config = config
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.request_delay = float(config.get("request_delay", 0.0))
        self.last_reset: dict[str, str] = {}  # system identity -> LastResetTime
        self.faults: list[dict[str, Any]] = []
        self.fault_hits = 0
        self.sessions: dict[str, tuple[str, str]] = {}  # token -> (session id, user)
        self.logins = 0
        self.deleted_sessions = 0
        self.resets: list[dict[str, str]] = []
        self.updates: list[dict[str, Any]] = []
        self.history: list[dict[str, str]] = []
        self.chassis_power: dict[str, str] = {}
        self.inventory: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.task_ids = itertools.count(100)
        self.session_ids = itertools.count(1)

    def record_power(self, kind: str, name: str, state: str) -> None:
        with self.lock:
            self.history.append({"kind": kind, "name": name, "state": state})

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "requests": self.requests,
                "fault_hits": self.fault_hits,
                "faults_left": sum(f["count"] for f in self.faults),
                "logins": self.logins,
                "live_sessions": len(self.sessions),
                "session_tokens": list(self.sessions),
                "deleted_sessions": self.deleted_sessions,
                "resets": list(self.resets),
                "updates": list(self.updates),
                "history": list(self.history),
            }


def _json_response(
    start_response: StartResponse,
    status: int,
    body: Any = None,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    payload = b"" if body is None else json.dumps(body).encode()
    reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(status, "Error")
    all_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    start_response(f"{status} {reason}", all_headers + list(headers))
    return [payload]


def _read_json(environ: Environ) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


class EmulatorMiddleware:
    """Outside sushy's basic-auth middleware: control API, faults, counters, sessions."""

    def __init__(self, state: EmulatorState, with_auth: Wsgi, without_auth: Wsgi) -> None:
        self.state = state
        self.with_auth = with_auth
        self.without_auth = without_auth
        self.htpasswd = state.config.get("sushy", {}).get("SUSHY_EMULATOR_AUTH_FILE")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self.control(environ, start_response, path)
        state = self.state
        with state.lock:
            state.in_flight += 1
            state.requests += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            delay = state.request_delay
        try:
            if delay:
                time.sleep(delay)
            return self.serve(environ, start_response, path)
        finally:
            with state.lock:
                state.in_flight -= 1

    def serve(self, environ: Environ, start_response: StartResponse, path: str) -> Iterable[bytes]:
        fault = self.take_fault(environ.get("REQUEST_METHOD", "GET"), path)
        if fault is not None:
            headers = []
            if fault.get("retry_after") is not None:
                headers.append(("Retry-After", str(fault["retry_after"])))
            body = redfish_error(fault.get("message", "Service temporarily unavailable"))
            return _json_response(start_response, int(fault["status"]), body, headers)
        if not self.state.config.get("sessions"):
            return self.with_auth(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST" and path.rstrip("/") == SESSIONS_PATH:
            return self.login(environ, start_response)
        token = environ.get("HTTP_X_AUTH_TOKEN")
        if token is None:
            return self.with_auth(environ, start_response)
        with self.state.lock:
            session = self.state.sessions.get(token)
        if session is None:
            return _json_response(start_response, 401, redfish_error("Session is not valid"))
        if method == "DELETE" and path.startswith(SESSIONS_PATH + "/"):
            with self.state.lock:
                self.state.sessions.pop(token, None)
                self.state.deleted_sessions += 1
            return _json_response(start_response, 204)
        environ.pop("HTTP_AUTHORIZATION", None)
        return self.without_auth(environ, start_response)

    def login(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = _read_json(environ)
        user, password = str(body.get("UserName", "")), str(body.get("Password", ""))
        if not self.check_password(user, password):
            return _json_response(
                start_response, 401, redfish_error("Invalid username or password")
            )
        token = secrets.token_hex(16)
        with self.state.lock:
            session_id = str(next(self.state.session_ids))
            self.state.sessions[token] = (session_id, user)
            self.state.logins += 1
        uri = f"{SESSIONS_PATH}/{session_id}"
        created = {"@odata.id": uri, "Id": session_id, "UserName": user}
        return _json_response(
            start_response, 201, created, [("X-Auth-Token", token), ("Location", uri)]
        )

    def check_password(self, user: str, password: str) -> bool:
        if not self.htpasswd:
            return True
        with open(self.htpasswd) as handle:
            for line in handle:
                name, _, digest = line.strip().partition(":")
                if name == user and digest:
                    return bcrypt.checkpw(password.encode(), digest.encode())
        return False

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault["count"] <= 0:
                    continue
                if fault.get("method") not in (None, method):
                    continue
                if not path.startswith(fault.get("path", "/redfish/v1/Systems")):
                    continue
                fault["count"] -= 1
                self.state.fault_hits += 1
                return dict(fault)
        return None

    def control(
        self, environ: Environ, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        state = self.state
        command = path.removeprefix("/_emulator/")
        if command == "stats":
            return _json_response(start_response, 200, state.snapshot())
        body = _read_json(environ)
        with state.lock:
            if command == "faults":
                state.faults.append({"count": 1, **body})
            elif command == "expire-sessions":
                state.sessions.clear()
            elif command == "config":
                if "request_delay" in body:
                    state.request_delay = float(body["request_delay"])
                state.config.update({k: v for k, v in body.items() if k != "request_delay"})
            elif command == "reset-counters":
                state.max_in_flight = state.in_flight
                state.requests = 0
                state.resets.clear()
                state.updates.clear()
                state.history.clear()
            else:
                return _json_response(start_response, 404, redfish_error(f"no {command}"))
        return _json_response(start_response, 200, state.snapshot())


def build_app(config: dict[str, Any]) -> Any:
    """Configure sushy's Flask app and graft the additions on it."""
    import flask
    from sushy_tools.emulator import main as sushy_main
    from sushy_tools.emulator.resources.systems import fakedriver

    state = EmulatorState(config)
    delay = float(config.get("power_delay", 0))

    class FixedDelay:
        """Stands in for `random` in the fake driver: power changes land `delay` seconds
        (fractions too) after the request. The driver adds this to `int(time.time())`,
        so the second's fraction it cut off is given back."""

        @staticmethod
        def randint(low: int, high: int) -> float:
            now = time.time()
            return delay + (now - int(now))

    class RecordingFakeDriver(fakedriver.FakeDriver):  # type: ignore[misc]
        """The fake driver, also logging every power state a system goes through."""

        last_seen: dict[str, str] = {}

        def _update(self, system: Any, **changes: Any) -> None:
            if isinstance(system, str):
                system = self._get(system)
            super()._update(system, **changes)
            uuid, current = system["uuid"], system["power_state"]
            if self.last_seen.setdefault(uuid, "?") != current:
                self.last_seen[uuid] = current
                state.record_power("system", system["name"], current)

    fakedriver.random = FixedDelay
    fakedriver.FakeDriver = RecordingFakeDriver

    app = sushy_main.app
    app.configure(extra_config=config.get("sushy", {}))
    for system in config.get("sushy", {}).get("SUSHY_EMULATOR_FAKE_SYSTEMS", []):
        RecordingFakeDriver.last_seen[system["uuid"]] = system.get("power_state", "Off")

    views = app.view_functions

    def replace_view(endpoint: str, wrapper: Callable[..., Any]) -> None:
        views[endpoint] = wrapper

    def json_of(response: Any) -> Any:
        return json.loads(response.get_data()) if response.get_data() else None

    def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return flask.Response(
            json.dumps(body) if body is not None else "",
            status=status,
            content_type="application/json",
            headers=headers or {},
        )

    # --- service root: advertise sessions ------------------------------------------
    original_root = views["root_resource"]

    def root_resource() -> Any:
        body = json_of(original_root())
        if state.config.get("sessions"):
            body["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
            body["Links"] = {"Sessions": {"@odata.id": SESSIONS_PATH}}
        return respond(body)

    replace_view("root_resource", root_resource)

    # --- systems: allowable reset types, ActionInfo, PowerCycle ----------------------
    original_system = views["system_resource"]
    original_reset = views["system_reset_action"]

    def system_resource(identity: str) -> Any:
        response = original_system(identity=identity)
        if flask.request.method != "GET" or response.status_code != 200:
            return response
        body = json_of(response)
        action = body["Actions"]["#ComputerSystem.Reset"]
        allowed = state.config.get("reset_types")
        if allowed is not None:
            action["ResetType@Redfish.AllowableValues"] = allowed
        if state.config.get("reset_action_info"):
            action.pop("ResetType@Redfish.AllowableValues", None)
            action["@Redfish.ActionInfo"] = f"/redfish/v1/Systems/{identity}/ResetActionInfo"
        if state.config.get("last_reset_time"):
            with state.lock:
                body["LastResetTime"] = state.last_reset.get(identity, STARTED_AT)
        return respond(body)

    def system_reset_action_info(identity: str) -> Any:
        allowed = state.config.get("reset_types") or []
        return respond(
            {
                "@odata.id": f"/redfish/v1/Systems/{identity}/ResetActionInfo",
                "Id": "ResetActionInfo",
                "Parameters": [{"Name": "ResetType", "Required": True, "AllowableValues": allowed}],
            }
        )

    def system_reset_action(identity: str) -> Any:
        reset_type = (flask.request.get_json(silent=True) or {}).get("ResetType", "")
        allowed = state.config.get("reset_types")
        if allowed is not None and reset_type not in allowed:
            return respond(
                redfish_error(
                    f"The value {reset_type} for the parameter ResetType is not in the list "
                    "of acceptable values.",
                    "Base.1.8.ActionParameterValueNotInList",
                ),
                400,
            )
        with state.lock:
            state.resets.append({"kind": "system", "identity": identity, "type": reset_type})
            if reset_type not in ("ForceOff", "GracefulShutdown", "Nmi", "PushPowerButton"):
                state.last_reset[identity] = datetime.now(UTC).isoformat()
        if reset_type == "PowerCycle":
            app.systems.set_power_state(identity, "ForceRestart")
            return respond(None, 204)
        return original_reset(identity=identity)

    replace_view("system_resource", system_resource)
    replace_view("system_reset_action", system_reset_action)
    app.add_url_rule(
        "/redfish/v1/Systems/<identity>/ResetActionInfo",
        "nico_system_reset_action_info",
        system_reset_action_info,
    )

    # --- chassis power ---------------------------------------------------------------
    original_chassis = views["chassis_resource"]
    chassis_types = config.get("chassis_reset_types", ["On", "ForceOff", "GracefulShutdown"])

    def chassis_resource(identity: str) -> Any:
        response = original_chassis(identity=identity)
        if flask.request.method != "GET" or response.status_code != 200:
            return response
        body = json_of(response)
        uuid = app.chassis.uuid(identity)
        with state.lock:
            body["PowerState"] = state.chassis_power.setdefault(uuid, "On")
        body["@odata.id"] = f"/redfish/v1/Chassis/{uuid}"
        body["Actions"] = {
            "#Chassis.Reset": {
                "target": f"/redfish/v1/Chassis/{uuid}/Actions/Chassis.Reset",
                "ResetType@Redfish.AllowableValues": chassis_types,
            }
        }
        return respond(body)

    def chassis_reset_action(identity: str) -> Any:
        uuid = app.chassis.uuid(identity)
        name = app.chassis.name(identity)
        reset_type = (flask.request.get_json(silent=True) or {}).get("ResetType", "")
        if reset_type not in chassis_types:
            return respond(
                redfish_error(
                    f"The value {reset_type} for the parameter ResetType is not in the list "
                    "of acceptable values.",
                    "Base.1.8.ActionParameterValueNotInList",
                ),
                400,
            )
        with state.lock:
            state.resets.append({"kind": "chassis", "identity": name, "type": reset_type})
            before = state.chassis_power.setdefault(uuid, "On")
        steps = {"On": ["On"], "ForceOn": ["On"], "ForceOff": ["Off"], "GracefulShutdown": ["Off"]}
        for new_state in steps.get(reset_type, ["Off", "On"]):
            if new_state != before:
                with state.lock:
                    state.chassis_power[uuid] = new_state
                state.record_power("chassis", name, new_state)
                before = new_state
        return respond(None, 204)

    replace_view("chassis_resource", chassis_resource)
    app.add_url_rule(
        "/redfish/v1/Chassis/<identity>/Actions/Chassis.Reset",
        "nico_chassis_reset",
        chassis_reset_action,
        methods=["POST"],
    )

    # --- firmware ----------------------------------------------------------------------
    versions = config.get("firmware_versions", {"BMC": "1.0.0", "BIOS": "1.0.0"})
    duration = float(config.get("firmware_duration", 0.5))

    def ensure_inventory() -> dict[str, dict[str, Any]]:
        with state.lock:
            if state.inventory:
                return state.inventory
        members: dict[str, dict[str, Any]] = {}
        for uuid in app.systems.systems:
            name = app.systems.name(uuid)
            for part, version in versions.items():
                member_id = f"{name}-{part}"
                members[member_id] = {
                    "@odata.id": f"{INVENTORY_PATH}/{member_id}",
                    "Id": member_id,
                    "Name": f"{name} {part} firmware",
                    "Version": version,
                    "Updateable": True,
                    "RelatedItem": [{"@odata.id": f"/redfish/v1/Systems/{uuid}"}],
                }
        for uuid in app.chassis.chassis:
            name = app.chassis.name(uuid)
            member_id = f"{name}-BMC"
            members[member_id] = {
                "@odata.id": f"{INVENTORY_PATH}/{member_id}",
                "Id": member_id,
                "Name": f"{name} BMC firmware",
                "Version": versions.get("BMC", "1.0.0"),
                "Updateable": True,
                "RelatedItem": [{"@odata.id": f"/redfish/v1/Chassis/{uuid}"}],
            }
        with state.lock:
            if not state.inventory:
                state.inventory.update(members)
            return state.inventory

    def inventory_collection() -> Any:
        members = ensure_inventory()
        return respond(
            {
                "@odata.id": INVENTORY_PATH,
                "Name": "Firmware Inventory",
                "Members@odata.count": len(members),
                "Members": [{"@odata.id": m["@odata.id"]} for m in members.values()],
            }
        )

    def inventory_member(member_id: str) -> Any:
        member = ensure_inventory().get(member_id)
        if member is None:
            return respond(redfish_error(f"No firmware component {member_id}"), 404)
        with state.lock:
            return respond(dict(member))

    def simple_update() -> Any:
        body = flask.request.get_json(silent=True) or {}
        image = body.get("ImageURI")
        with state.lock:
            state.updates.append({"image": image, "targets": body.get("Targets")})
        if not isinstance(image, str) or not image:
            return respond(
                redfish_error(
                    "The action UpdateService.SimpleUpdate requires the parameter ImageURI.",
                    "Base.1.8.ActionParameterMissing",
                ),
                400,
            )
        members = ensure_inventory()
        targets = body.get("Targets")
        if targets is None:
            chosen = [m for m in members if m.endswith("-BMC")]
        else:
            chosen = [t.rstrip("/").rsplit("/", 1)[-1] for t in targets]
            unknown = [t for t in chosen if t not in members]
            if unknown:
                return respond(
                    redfish_error(f"The target {unknown[0]} is not a firmware component."), 400
                )
        file_name = image.rstrip("/").rsplit("/", 1)[-1]
        version = re.sub(r"\.[A-Za-z]+$", "", file_name.rsplit("-", 1)[-1])
        task_id = str(next(state.task_ids))
        with state.lock:
            state.tasks[task_id] = {
                "started": time.monotonic(),
                "members": chosen,
                "version": version,
                "fails": "corrupt" in image,
                "applied": False,
            }
        uri = f"{TASKS_PATH}/{task_id}"
        return respond(task_body(task_id), 202, {"Location": uri})

    def task_body(task_id: str) -> dict[str, Any]:
        with state.lock:
            task = state.tasks[task_id]
            elapsed = time.monotonic() - task["started"]
            done = elapsed >= duration
            percent = 100 if done else int(100 * elapsed / duration)
            if done and not task["applied"] and not task["fails"]:
                for member_id in task["members"]:
                    state.inventory[member_id]["Version"] = task["version"]
                task["applied"] = True
        body: dict[str, Any] = {
            "@odata.id": f"{TASKS_PATH}/{task_id}",
            "@odata.type": "#Task.v1_4_3.Task",
            "Id": task_id,
            "Name": f"Firmware update {task_id}",
            "PercentComplete": percent,
            "TaskState": "Running",
            "TaskStatus": "OK",
            "Messages": [],
        }
        if done and task["fails"]:
            body.update(TaskState="Exception", TaskStatus="Critical")
            body["Messages"] = [
                {
                    "MessageId": "Update.1.0.VerificationFailed",
                    "Message": "Image verification failed: signature mismatch.",
                }
            ]
        elif done:
            body.update(TaskState="Completed")
            body["Messages"] = [
                {
                    "MessageId": "Update.1.0.UpdateSuccessful",
                    "Message": f"Installed version {task['version']}.",
                }
            ]
        return body

    def task_resource(task_id: str) -> Any:
        with state.lock:
            known = task_id in state.tasks
        if not known:
            return respond(redfish_error(f"No task {task_id}"), 404)
        return respond(task_body(task_id))

    replace_view("UpdateService.update_service_simple_update", simple_update)
    app.add_url_rule(INVENTORY_PATH, "nico_inventory", inventory_collection)
    app.add_url_rule(f"{INVENTORY_PATH}/<member_id>", "nico_inventory_member", inventory_member)
    app.add_url_rule(f"{TASKS_PATH}/<task_id>", "nico_task", task_resource)

    # --- middleware ----------------------------------------------------------------------
    with_auth = app.wsgi_app
    without_auth = getattr(with_auth, "app", with_auth)
    app.wsgi_app = EmulatorMiddleware(state, with_auth, without_auth)
    return app


def main() -> int:
    from werkzeug.serving import WSGIRequestHandler, make_server

    # HTTP/1.1 keeps connections open, as BMCs do, so client connection reuse is real.
    WSGIRequestHandler.protocol_version = "HTTP/1.1"

    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    app = build_app(config)
    ssl_context = None
    if config.get("tls_cert"):
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(config["tls_cert"], config["tls_key"])
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
