"""TaskReportV1 transitions, as an operator reads them in GET /task/{id}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from nico.engine.report import PlannedStep, TaskReport, finalize_cancelled, format_timestamp
from tests.support.seed000 import example_response, validator

T0 = datetime(2026, 4, 10, 14, 0, 0, 123456, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def three_stage_report() -> TaskReport:
    """Shelves -> switches -> compute, with a UMS step the task does not target."""
    return TaskReport.initial(
        [
            (2, [PlannedStep("NVLSwitch", 9)]),
            (1, [PlannedStep("PowerShelf", 8), PlannedStep("UMS", 0)]),
            (3, [PlannedStep("Compute", 18)]),
        ]
    )


def assert_valid(report: dict[str, Any]) -> None:
    errors = [e.message for e in validator("TaskReportV1").iter_errors(report)]
    assert errors == []


def test_initial_report_mirrors_the_rule_with_untargeted_steps_skipped() -> None:
    wire = three_stage_report().to_wire()
    assert wire == {
        "version": 1,
        "stages": [
            {
                "number": 1,
                "status": "pending",
                "steps": [
                    {"componentType": "PowerShelf", "status": "pending", "totalComponents": 8},
                    {"componentType": "UMS", "status": "skipped", "totalComponents": 0},
                ],
            },
            {
                "number": 2,
                "status": "pending",
                "steps": [
                    {"componentType": "NVLSwitch", "status": "pending", "totalComponents": 9}
                ],
            },
            {
                "number": 3,
                "status": "pending",
                "steps": [{"componentType": "Compute", "status": "pending", "totalComponents": 18}],
            },
        ],
    }
    assert_valid(wire)


def test_running_stage_shows_live_counts_that_never_go_back() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    assert report.update_counts(1, 0, completed=3, failed=0)
    assert not report.update_counts(1, 0, completed=2, failed=0)  # a late, older signal
    step = report.to_wire()["stages"][0]["steps"][0]
    assert step == {
        "componentType": "PowerShelf",
        "status": "running",
        "totalComponents": 8,
        "completedComponents": 3,
        "failedComponents": 0,
        "startedAt": "2026-04-10T14:00:00Z",
    }
    skipped = report.to_wire()["stages"][0]["steps"][1]
    assert skipped == {"componentType": "UMS", "status": "skipped", "totalComponents": 0}


def test_completed_stage_completes_running_steps_and_keeps_skipped_ones() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    report.complete_step(1, 0, completed=8, failed=0, now=at(30))
    report.complete_stage(1, at(31))
    stage = report.to_wire()["stages"][0]
    assert stage["status"] == "completed"
    assert stage["startedAt"] == "2026-04-10T14:00:00Z"
    assert stage["finishedAt"] == "2026-04-10T14:00:31Z"
    assert stage["steps"][0]["finishedAt"] == "2026-04-10T14:00:30Z"
    assert stage["steps"][0]["completedComponents"] == 8
    assert stage["steps"][1]["status"] == "skipped"
    assert "startedAt" not in stage["steps"][1]


def test_first_failing_stage_is_the_top_level_error_and_later_stages_stay_pending() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    report.complete_stage(1, at(10))
    report.begin_stage(2, at(10))
    report.fail_step(2, 0, "2 of 9 NVLSwitch failed: nvl-03: BMC unreachable", 7, 2, at(40))
    report.fail_stage(2, "2 of 9 NVLSwitch failed: nvl-03: BMC unreachable", at(41))
    report.fail_stage(3, "a later failure must not replace the first", at(50))
    wire = report.to_wire()
    assert wire["error"] == "2 of 9 NVLSwitch failed: nvl-03: BMC unreachable"
    step = wire["stages"][1]["steps"][0]
    assert (step["status"], step["completedComponents"], step["failedComponents"]) == (
        "failed",
        7,
        2,
    )
    assert_valid(wire)


def test_stage_after_a_failure_stays_pending() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    report.fail_stage(1, "boom", at(5))
    assert [s["status"] for s in report.to_wire()["stages"]] == ["failed", "pending", "pending"]


def test_errors_are_cut_to_512_bytes_on_a_utf8_boundary() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    report.fail_stage(1, "é" * 400, at(1))  # 800 bytes of two-byte characters
    error = report.to_wire()["stages"][0]["error"]
    assert len(error.encode()) == 512
    assert error == "é" * 256


def test_timestamps_are_rfc3339_utc_seconds() -> None:
    east = datetime(2026, 4, 10, 18, 0, 0, 999, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(east) == "2026-04-10T16:00:00Z"
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 1, 1))


def test_cancel_fails_the_running_stage_and_step_and_sets_the_error() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    report.complete_stage(1, at(5))
    report.begin_stage(2, at(5))
    report.update_counts(2, 0, 4, 0)
    finalized = finalize_cancelled(report.to_wire(), at(9))
    assert finalized is not None
    stage = finalized["stages"][1]
    assert stage["status"] == "failed"
    assert stage["error"] == "cancelled by user"
    assert stage["finishedAt"] == "2026-04-10T14:00:09Z"
    assert stage["steps"][0]["status"] == "failed"
    assert stage["steps"][0]["completedComponents"] == 4
    assert finalized["stages"][0]["status"] == "completed"
    assert finalized["stages"][2]["status"] == "pending"
    assert finalized["error"] == "cancelled by user"
    assert_valid(finalized)


def test_cancel_keeps_an_earlier_failure_as_the_error_and_no_report_stays_none() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    report.fail_stage(1, "shelf-02: BMC unreachable", at(3))
    finalized = finalize_cancelled(report.to_wire(), at(4))
    assert finalized is not None
    assert finalized["error"] == "shelf-02: BMC unreachable"
    assert finalize_cancelled(None) is None


def test_finalizing_names_the_reason_and_tolerates_a_report_that_does_not_parse() -> None:
    report = three_stage_report()
    report.begin_stage(1, at(0))
    reason = "Workflow t-1 not found: the task can no longer finish (reconciler)"
    finalized = finalize_cancelled(report.to_wire(), at(2), reason)
    assert finalized is not None
    assert finalized["stages"][0]["error"] == reason and finalized["error"] == reason
    assert finalize_cancelled({"stages": [{"status": "running"}]}, at(2)) is None
    assert finalize_cancelled({"stages": [{"number": 1, "status": "bogus"}]}, at(2)) is None


def test_seed_example_report_round_trips_unchanged() -> None:
    example = example_response()[0]["report"]
    assert TaskReport.from_wire(example).to_wire() == example


def test_a_firmware_steps_outcomes_survive_the_wire_and_stay_seed_valid() -> None:
    report = TaskReport.initial([(1, [PlannedStep("Compute", 2)])])
    report.begin_stage(1, at(0))
    outcomes = [
        {
            "trayId": "t1",
            "name": "compute-01",
            "outcome": "skipped",
            "fromVersion": "2.0.0",
            "toVersion": "2.0.0",
        },
        {
            "trayId": "t2",
            "name": "compute-02",
            "outcome": "completed",
            "fromVersion": "1.0.0",
            "toVersion": "2.0.0",
        },
    ]
    report.record_outcomes(1, 0, skipped=1, components=outcomes)
    report.complete_step(1, 0, completed=1, failed=0, now=at(30))
    wire = report.to_wire()
    step = wire["stages"][0]["steps"][0]
    assert (step["completedComponents"], step["failedComponents"]) == (1, 0)
    assert (step["skippedComponents"], step["components"]) == (1, outcomes)
    assert_valid(wire)
    assert TaskReport.from_wire(wire).to_wire() == wire
    # A report without them (every step that is not a firmware step) says nothing of them.
    plain = three_stage_report().to_wire()["stages"][0]["steps"][0]
    assert "skippedComponents" not in plain and "components" not in plain
