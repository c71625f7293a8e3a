"""`nico sim fault add|list|clear` against the real API over HTTP: racks and trays by
name, clear output, exit 1 with the API's reason on every failure."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner, Result

from nico.cli.main import app as nico_app
from nico.services import Services
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.postgres import run_blocking
from tests.support.tasks import add_rack


class Nico:
    """Runs `nico sim fault ...` against one API with a PROVIDER_ADMIN token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.env = {"NICO_TOKEN": token}
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(
            nico_app, ["sim", "fault", *args, "--api-url", self.url], env=env or self.env
        )

    def ok(self, *args: str) -> list[str]:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    def refused(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self(*args, env=env)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: "), result.stderr
        return result.stderr


@pytest.fixture
def served(live_server: tuple[str, Services], make_token: Any) -> tuple[Nico, Services, MadeRack]:
    url, services = live_server
    rack = run_blocking(make_site_with_rack(services))
    return Nico(url, make_token()), services, rack


def test_add_list_and_clear_by_rack_and_tray_names(
    served: tuple[Nico, Services, MadeRack],
) -> None:
    nico, _, rack = served
    added = nico.ok("add", "unreachable", "--rack", "rack-01", "--tray", "compute-07")
    assert added[0] == "added 1 fault(s):"
    assert added[1].endswith("unreachable on rack-01/compute-07 (unlimited, no expiry)")
    typed = nico.ok("add", "power-fails", "--rack", "rack-01", "--type", "nvswitch", "--count", "2")
    assert typed[1].endswith("power-fails on NVLSwitch trays of rack-01 (2 left, no expiry)")
    # Without --rack a name unique in the site is enough; the site is the org's only one.
    slow = nico.ok("add", "slow:5s", "--tray", "powershelf-02", "--expiry", "30m")
    assert "slow:5s on rack-01/powershelf-02 (unlimited, until 20" in slow[1]
    site_wide = nico.ok("add", "firmware-hangs", "--site", str(rack.site_id))
    assert site_wide[1].endswith("firmware-hangs on every tray of the site (unlimited, no expiry)")

    listed = nico.ok("list")
    assert [line.split()[1] for line in listed] == [
        "unreachable",
        "power-fails",
        "slow:5s",
        "firmware-hangs",
    ]
    assert nico.ok("list", "--rack", "rack-01", "--tray", "compute-07") == [added[1].strip()]

    assert nico.ok("clear", "--tray", "compute-07") == ["cleared 1 fault(s)"]
    fault_id = listed[1].split()[0]
    assert nico.ok("clear", fault_id) == [f"cleared fault {fault_id}"]
    assert nico.ok("clear", "--rack", "rack-01") == ["cleared 1 fault(s)"]  # powershelf-02's
    assert nico.ok("clear") == ["cleared 1 fault(s)"]  # the site-wide one
    assert nico.ok("list") == ["no active faults"]


def test_failures_exit_1_with_the_reason(served: tuple[Nico, Services, MadeRack]) -> None:
    nico, services, rack = served
    assert "no tray named 'compute-99' in rack rack-01" in nico.refused(
        "add", "unreachable", "--rack", "rack-01", "--tray", "compute-99"
    )
    assert "no rack 'rack-09'" in nico.refused("add", "unreachable", "--rack", "rack-09")
    bad = nico.refused("add", "explode", "--tray", "compute-01")
    assert "HTTP 400: Failed to validate simulator fault request data: fault: must be one of" in bad
    assert "count: " in nico.refused("add", "unreachable", "--count", "0")
    assert "HTTP 404: Simulator fault not found" in nico.refused(
        "clear", "00000000-0000-0000-0000-000000000000"
    )
    assert "no token" in nico.refused("list", env={"NICO_TOKEN": ""})
    assert "HTTP 401" in nico.refused("list", env={"NICO_TOKEN": "not-a-jwt"})
    assert nico.ok("list") == ["no active faults"]  # nothing was stored

    # A second rack with the same tray names: a bare name is now ambiguous.
    run_blocking(add_rack(services, rack.site_id, "rack-02"))
    assert "is in several racks (rack-01, rack-02): pass --rack" in nico.refused(
        "add", "unreachable", "--tray", "compute-01"
    )


def test_a_redfish_site_has_no_drills(live_server: tuple[str, Services], make_token: Any) -> None:
    url, services = live_server
    run_blocking(make_site_with_rack(services, backend="redfish"))
    nico = Nico(url, make_token())
    assert "HTTP 404: simulator is not the backend of this site" in nico.refused("list")
    assert "simulator is not the backend of tray rack-01/compute-01" in nico.refused(
        "add", "unreachable", "--tray", "compute-01"
    )
