"""Go-style durations parse as Go does and keep the text the user wrote."""

import pytest

from nico.rules.durations import DurationError, format_seconds, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("1m30s", 90), ("2h", 7200), ("1.5h", 5400), ("0", 0)],
)
def test_parse(text: str, seconds: float) -> None:
    parsed = parse_duration(text)
    assert parsed.seconds == pytest.approx(seconds)
    assert parsed.text == text


@pytest.mark.parametrize("bad", ["", "10", "1d", "m", "1m30", "abc", "1 m"])
def test_rejects_invalid_strings(bad: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_bare_number_is_refused_with_a_hint() -> None:
    with pytest.raises(DurationError, match="not the number 30"):
        parse_duration(30)


def test_format_seconds() -> None:
    assert format_seconds(3723) == "1h2m3s"
    assert format_seconds(0.25) == "250ms"
    assert format_seconds(60) == "1m"
