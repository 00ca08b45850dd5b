"""The token bucket on a fake clock: a burst at once, then `rate` per second."""

from __future__ import annotations

import pytest

from podtier.webhook.cleanup.bucket import TokenBucket
from tests.conftest import FakeClock


def test_a_full_bucket_gives_its_burst_then_waits() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=5, burst=3, clock=clock)
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.2)
    clock.now += 0.2
    assert bucket.try_take() == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(10, 1), (50, 10), (1000, 100)])
def test_takes_over_time_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: int
) -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    times = []
    for _ in range(1000):
        bucket.take(clock.sleep)
        times.append(clock.now)
    for i, t in enumerate(times):
        assert i + 1 <= burst + rate * t + 1e-6
    # and it is not slower than it needs to be
    assert times[-1] == pytest.approx((1000 - burst) / rate)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    clock.now += 3600
    assert [bucket.try_take() == 0.0 for _ in range(3)] == [True, True, False]
