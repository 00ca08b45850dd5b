"""`--cleanup-after` durations."""

from __future__ import annotations

import pytest

from podtier.webhook.cleanup.duration import DurationError, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90m", 5400, id="minutes"),
        pytest.param("1h", 3600, id="hours"),
        pytest.param("2d", 172800, id="days"),
        pytest.param("45s", 45, id="seconds"),
        pytest.param("1h30m", 5400, id="combined"),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("soon", "expected a whole number and a unit", id="words"),
        pytest.param("90", "expected a whole number and a unit", id="no-unit"),
        pytest.param("1.5h", "expected a whole number and a unit", id="fraction"),
        pytest.param("2w", "expected a whole number and a unit", id="weeks"),
        pytest.param("0m", "longer than zero", id="zero"),
    ],
)
def test_bad_durations_say_what_was_expected(text: str, says: str) -> None:
    with pytest.raises(DurationError) as err:
        parse_duration(text)
    assert f'"{text}"' in str(err.value)
    assert says in str(err.value)
