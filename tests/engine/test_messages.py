"""Task messages an operator reads while a task runs."""

from nico.engine.messages import running_message


def test_running_message_counts_stages_and_keeps_the_reports_stage_number() -> None:
    assert running_message(2, 2, 3, ["NVLSwitch"]) == "Running stage 2/3: NVLSwitch"
    # Rule stages 1, 5, 9: the second one is stage 5 in the report.
    assert running_message(5, 2, 3, ["Compute", "NVLSwitch"]) == (
        "Running stage 5 (2/3): Compute, NVLSwitch"
    )
    assert running_message(1, 1, 1, []) == "Running stage 1/1: nothing targeted"
