"""Go-style duration strings (`500ms`, `1m30s`, `2h`), parsed once and kept as written.

Rules read back exactly as the user wrote them (seed 004's `"1m"` stays `"1m"`), so a
parsed duration keeps its original text next to its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A duration string that is not a valid Go duration."""


@dataclass(frozen=True, slots=True)
class GoDuration:
    """A duration as written (`text`) and its value in seconds."""

    text: str
    seconds: float

    @property
    def timedelta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        return self.text


def parse_duration(value: object) -> GoDuration:
    """Parse a Go duration string; bare numbers are refused because their unit is ambiguous."""
    if isinstance(value, bool | int | float):
        raise DurationError(
            'must be a duration string with a unit such as "30s" or "1m30s", '
            f"not the number {value}"
        )
    if not isinstance(value, str):
        raise DurationError('must be a duration string such as "30s" or "1m30s"')
    text = value.strip()
    if not text:
        raise DurationError('must not be empty; use a duration such as "30s"')
    body = text
    sign = 1.0
    if body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return GoDuration(text=text, seconds=0.0)
    pos = 0
    total = 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise DurationError(
                f'invalid duration "{text}": use numbers with units '
                'ns, us, ms, s, m, h (e.g. "1m30s")'
            )
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise DurationError(f'invalid duration "{text}"')
    return GoDuration(text=text, seconds=sign * total)


def format_seconds(seconds: float) -> str:
    """Render seconds as a compact Go-style string (`1h2m3s`, `500ms`) for messages and plans."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        millis = round(seconds * 1000)
        return f"{millis}ms" if millis else "0s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or not out:
        out += f"{secs}s"
    return out
