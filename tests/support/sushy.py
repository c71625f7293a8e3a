"""Start the sushy-tools Redfish emulator for a test and talk to its control endpoints.

Each emulator is its own process (`tests.support.sushy_launcher`) on 127.0.0.1 with a
port the OS picks, a state dir and htpasswd under the test's tmp dir, and a fixed power
delay. See the launcher's docstring for what it adds to sushy-tools.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import select
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nico.hardware.interface import BmcEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
USERNAME = "admin"
# A password distinctive enough that finding it anywhere is a leak, never a coincidence.
PASSWORD = "Pw-7f3a9c-secret!"
STARTUP_SECONDS = 20.0


@dataclass(frozen=True)
class FakeSystem:
    name: str
    power_state: str = "Off"
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class FakeChassis:
    name: str
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class TlsFiles:
    """A CA and a server certificate for 127.0.0.1 signed by it."""

    ca_pem: str
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate a throwaway CA and a 127.0.0.1 server certificate (EC P-256, 1 day)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nico test BMC CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "bmc.crt", directory / "bmc.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(ca_cert.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file)


class SushyEmulator:
    """A running emulator: its address, the BMC endpoint for a tray, and its controls."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, scheme: str, tls: TlsFiles | None
    ) -> None:
        self.process = process
        self.port = port
        self.scheme = scheme
        self.tls = tls
        self.url = f"{scheme}://127.0.0.1:{port}"
        self._control = httpx.Client(base_url=self.url, verify=False, timeout=10.0)

    def endpoint(self, resource_id: str | None = None, **overrides: Any) -> BmcEndpoint:
        """How a tray on this emulator is reached (credentials included)."""
        values: dict[str, Any] = {
            "address": f"{self.scheme}://127.0.0.1",
            "port": self.port,
            "username": USERNAME,
            "password": PASSWORD,
            "resource_id": resource_id,
            "ca_bundle": self.tls.ca_pem if self.tls else None,
        }
        values.update(overrides)
        return BmcEndpoint(**values)

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def inject_fault(self, **fault: Any) -> None:
        """Answer the next `count` requests matching `method`/`path` with `status`."""
        self._call("faults", fault)

    def configure(self, **changes: Any) -> None:
        self._call("config", changes)

    def expire_sessions(self) -> None:
        self._call("expire-sessions")

    def reset_counters(self) -> None:
        self._call("reset-counters")

    def power_history(self, name: str) -> list[str]:
        """Every power state the named system or chassis went through, in order."""
        return [h["state"] for h in self.stats()["history"] if h["name"] == name]

    def resets(self) -> list[str]:
        """Every ResetType the emulator accepted or refused, in order."""
        return [r["type"] for r in self.stats()["resets"]]

    def updates(self) -> list[dict[str, Any]]:
        """Every SimpleUpdate received: its ImageURI and Targets."""
        return list(self.stats()["updates"])

    def firmware_part(self, member_id: str) -> dict[str, Any]:
        """A FirmwareInventory member as the BMC reports it."""
        response = self._control.get(
            f"/redfish/v1/UpdateService/FirmwareInventory/{member_id}", auth=(USERNAME, PASSWORD)
        )
        response.raise_for_status()
        part: dict[str, Any] = response.json()
        return part

    def power_state(self, system: FakeSystem) -> str:
        auth = (USERNAME, PASSWORD)
        response = self._control.get(f"/redfish/v1/Systems/{system.uuid}", auth=auth)
        response.raise_for_status()
        return str(response.json()["PowerState"])

    def _call(self, command: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if command == "stats":
            response = self._control.get(f"/_emulator/{command}")
        else:
            response = self._control.post(f"/_emulator/{command}", json=body or {})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        self._control.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_emulator(
    directory: Path,
    *,
    systems: tuple[FakeSystem, ...] = (),
    chassis: tuple[FakeChassis, ...] = (),
    sessions: bool = False,
    tls: bool = False,
    power_delay: float = 0,
    reset_types: list[str] | None = None,
    reset_action_info: bool = False,
    chassis_reset_types: list[str] | None = None,
    firmware_duration: float = 0.3,
    request_delay: float = 0.0,
    last_reset_time: bool = False,
) -> SushyEmulator:
    """Start an emulator process serving `systems` and `chassis`, ready for requests."""
    directory.mkdir(parents=True, exist_ok=True)
    htpasswd = directory / "htpasswd"
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USERNAME}:{digest}\n")
    sushy_config: dict[str, Any] = {
        "SUSHY_EMULATOR_FAKE_DRIVER": True,
        "SUSHY_EMULATOR_STATE_DIR": str(directory / "state"),
        "SUSHY_EMULATOR_AUTH_FILE": str(htpasswd),
        "SUSHY_EMULATOR_FAKE_SYSTEMS": [
            {
                "uuid": s.uuid,
                "name": s.name,
                "power_state": s.power_state,
                "external_notifier": False,
                "nics": [],
            }
            for s in systems
        ],
    }
    if chassis:
        sushy_config["SUSHY_EMULATOR_CHASSIS"] = [
            {"Id": c.name, "Name": c.name, "UUID": c.uuid} for c in chassis
        ]
    tls_files = make_tls_files(directory) if tls else None
    config: dict[str, Any] = {
        "sushy": sushy_config,
        "sessions": sessions,
        "power_delay": power_delay,
        "reset_types": reset_types,
        "reset_action_info": reset_action_info,
        "firmware_duration": firmware_duration,
        "request_delay": request_delay,
        "last_reset_time": last_reset_time,
    }
    if chassis_reset_types is not None:
        config["chassis_reset_types"] = chassis_reset_types
    if tls_files is not None:
        config["tls_cert"] = str(tls_files.cert_file)
        config["tls_key"] = str(tls_files.key_file)
    config_file = directory / "emulator.json"
    config_file.write_text(json.dumps(config))
    log_file = (directory / "emulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sushy_launcher", str(config_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=log_file,
    )
    log_file.close()
    port = _read_port(process, directory / "emulator.log")
    return SushyEmulator(process, port, "https" if tls else "http", tls_files)


def _read_port(process: subprocess.Popen[bytes], log: Path) -> int:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
    line = process.stdout.readline() if ready else b""
    if not line:
        process.kill()
        raise RuntimeError(f"sushy emulator did not start:\n{log.read_text()[-3000:]}")
    return int(json.loads(line)["port"])
