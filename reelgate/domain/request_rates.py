"""A provider's request rate ("600/minute", "10/second", "5/2 seconds"): how many requests, in how long."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RequestRate:
    """At most `count` requests in any `period_seconds` (a sliding window, not calendar minutes)."""

    count: int
    period_seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.period_seconds <= 0:
            raise ValueError(f"a request rate needs a count and a period above zero, not {self}")

    def __str__(self) -> str:
        return f"{self.count}/{self.period_seconds:g} seconds"  # parse_rate reads it back


def parse_rate(text: str) -> RequestRate:
    """`<count>/<unit>` or `<count>/<number> <unit>`, unit second, minute, hour or day (plural allowed)."""
    found = _RATE.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a rate such as 600/minute, 10/second or 5/2 seconds")
    count, amount, unit = found.groups()
    period = float(amount or 1) * _UNITS[unit.lower()]
    if int(count) < 1 or period <= 0:
        raise ValueError(f"{text!r} needs a count and a period above zero")
    return RequestRate(int(count), period)
