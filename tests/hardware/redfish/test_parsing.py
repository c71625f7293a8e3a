"""Reading BMC answers: addresses, error bodies, Retry-After, tasks, catalog, inventory."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from nico.domain import ComponentType
from nico.hardware.interface import BmcEndpoint, FirmwareJobState, HardwareError
from nico.hardware.redfish.catalog import FirmwareCatalog
from nico.hardware.redfish.client import bmc_base_url, retry_after_seconds
from nico.hardware.redfish.errors import redfish_error_detail
from nico.hardware.redfish.resources import match_targets, related_members
from nico.hardware.redfish.tasks import firmware_job_from_task


@pytest.mark.parametrize(
    ("address", "port", "url", "label"),
    [
        ("10.0.0.5", None, "https://10.0.0.5:443", "10.0.0.5:443"),
        ("10.0.0.5", 8443, "https://10.0.0.5:8443", "10.0.0.5:8443"),
        ("bmc-7.lab:8443", None, "https://bmc-7.lab:8443", "bmc-7.lab:8443"),
        ("fd00::5", None, "https://[fd00::5]:443", "[fd00::5]:443"),
        ("[fd00::5]:8443", None, "https://[fd00::5]:8443", "[fd00::5]:8443"),
        ("http://127.0.0.1", 8000, "http://127.0.0.1:8000", "127.0.0.1:8000"),
    ],
)
def test_bmc_addresses_become_urls_https_unless_asked(
    address: str, port: int | None, url: str, label: str
) -> None:
    assert bmc_base_url(BmcEndpoint(address=address, port=port)) == (url, label)


def test_a_non_http_bmc_address_is_refused() -> None:
    with pytest.raises(HardwareError, match="not a host name, IP or http"):
        bmc_base_url(BmcEndpoint(address="ftp://10.0.0.5"))


def test_error_detail_prefers_extended_info_messages_over_the_summary() -> None:
    body = {
        "error": {
            "message": "A general error has occurred.",
            "@Message.ExtendedInfo": [{"Message": "First."}, {"Message": "Second."}],
        }
    }
    assert redfish_error_detail(body) == "First.; Second."
    assert redfish_error_detail({"error": {"message": "Only summary."}}) == "Only summary."
    assert redfish_error_detail(["not", "a", "body"]) == ""


def test_retry_after_reads_seconds_and_dates_and_is_capped() -> None:
    def busy(value: str | None) -> httpx.Response:
        headers = {"Retry-After": value} if value is not None else {}
        return httpx.Response(503, headers=headers)

    assert retry_after_seconds(busy("7"), 1) == 7.0
    assert retry_after_seconds(busy("3600"), 1) == 30.0
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= retry_after_seconds(busy(in_ten), 1) <= 10.0
    assert retry_after_seconds(busy(None), 3) == 4.0


@pytest.mark.parametrize(
    ("status", "body", "state", "percent"),
    [
        (202, {"TaskState": "New"}, FirmwareJobState.QUEUED, 0),
        (202, {"TaskState": "Running", "PercentComplete": 40}, FirmwareJobState.RUNNING, 40),
        (200, {"TaskState": "Completed", "PercentComplete": 99}, FirmwareJobState.COMPLETED, 100),
        (200, {"TaskState": "Completed", "TaskStatus": "Critical"}, FirmwareJobState.FAILED, 0),
        (200, {"TaskState": "Exception"}, FirmwareJobState.FAILED, 0),
        (202, None, FirmwareJobState.RUNNING, 0),
        (204, None, FirmwareJobState.COMPLETED, 100),
    ],
)
def test_task_states_map_to_firmware_job_states(
    status: int, body: object, state: FirmwareJobState, percent: int
) -> None:
    job = firmware_job_from_task("/t/1", status, body)
    assert (job.state, job.percent) == (state, percent)


def test_a_failed_task_without_messages_still_says_why() -> None:
    job = firmware_job_from_task("/t/1", 200, {"TaskState": "Killed"})
    assert job.message == "task Killed"


def test_catalog_accepts_type_aliases_and_falls_back_to_any_type() -> None:
    catalog = FirmwareCatalog(
        {"nvswitch": {"1.0": "https://i/sw-1.0.bin"}, "*": {"1.0": "x", "2.0": "https://i/2"}}
    )
    assert catalog.image_uri(ComponentType.NVLSWITCH, "1.0") == ("1.0", "https://i/sw-1.0.bin")
    assert catalog.image_uri(ComponentType.POWERSHELF, "2.0") == ("2.0", "https://i/2")
    with pytest.raises(HardwareError, match=r"no image for Compute version https://i/x\.bin"):
        catalog.image_uri(ComponentType.COMPUTE, " https://i/x.bin")
    with pytest.raises(HardwareError, match="lists no image for Compute"):
        FirmwareCatalog(None).image_uri(ComponentType.COMPUTE, None)


def test_inventory_members_are_narrowed_to_the_tray_and_matched_by_word() -> None:
    mine = {"@odata.id": "/fw/HGX_FW_BMC_0", "Id": "HGX_FW_BMC_0", "RelatedItem": [
        {"@odata.id": "/redfish/v1/Systems/a"}]}  # fmt: skip
    theirs = {"@odata.id": "/fw/other_BMC", "Id": "other_BMC", "RelatedItem": [
        {"@odata.id": "/redfish/v1/Systems/b"}]}  # fmt: skip
    members = related_members([mine, theirs], ["/redfish/v1/Systems/a"])
    assert members == [mine]
    assert match_targets(members, ["bmc", "bios"]) == (["/fw/HGX_FW_BMC_0"], ["bios"])
    # A BMC that tags nothing serves one tray: everything is the tray's.
    untagged = [{"@odata.id": "/fw/BMC", "Id": "BMC"}]
    assert related_members(untagged, ["/redfish/v1/Systems/a"]) == untagged
