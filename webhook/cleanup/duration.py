"""Durations as people write them on a command line: `90m`, `1h`, `2d`, `1h30m`, `45s`."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"(?:\d+[smhd])+")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds in `text`; a DurationError says what was expected."""
    cleaned = text.strip()
    if not _WHOLE.fullmatch(cleaned):
        raise DurationError(
            f'"{text}" is not a duration (expected a whole number and a unit s, m, h or d, '
            "such as 90m, 1h or 2d)"
        )
    seconds = sum(int(n) * UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise DurationError(f'"{text}" is not a duration longer than zero')
    return float(seconds)
