"""Decaying histograms: a percentile is never below the truth and at most one bucket (5%)
above it; a sample one half-life older weighs half; old peaks fade out; the histogram stays
small and its numbers finite over years of samples."""

from __future__ import annotations

import pytest

from podtier.webhook.core.profile import Histogram
from podtier.webhook.learning import decay

DAY = 86400.0
GI = 2**30


def filled(values: list[tuple[float, float]], buckets=decay.MEMORY) -> Histogram:
    histogram = Histogram()
    for value, when in values:
        histogram = decay.add(histogram, value, when, DAY, buckets)
    return histogram


@pytest.mark.parametrize("value", [1.0, 500.0, 2 * GI, 3.3 * GI, 64 * GI])
def test_a_percentile_is_at_most_one_bucket_above(value: float) -> None:
    buckets = decay.CPU if value < 1000 else decay.MEMORY
    got = decay.percentile(filled([(value, 0.0)], buckets), 0.95, buckets)
    assert got is not None
    assert value <= got <= value * 1.05 + 1


def test_an_empty_histogram_has_no_percentile() -> None:
    assert decay.percentile(Histogram(), 0.95, decay.MEMORY) is None


def test_a_sample_a_half_life_older_weighs_half() -> None:
    """Two values, the larger a day older: at p60 the newer (weight 2/3) decides, while with
    equal times p60 would land on the larger one."""
    low, high = 1 * GI, 4 * GI
    aged = filled([(high, 0.0), (low, DAY)])
    same = filled([(high, DAY), (low, DAY)])
    assert decay.percentile(aged, 0.6, decay.MEMORY) < 1.1 * low
    assert decay.percentile(same, 0.6, decay.MEMORY) > high


def test_an_old_peak_fades_out() -> None:
    samples = [(8 * GI, 0.0)] + [(2 * GI, DAY * (1 + i / 10)) for i in range(100)]
    histogram = filled(samples)
    assert decay.percentile(histogram, 1.0, decay.MEMORY) < 2.1 * GI
    assert len(histogram.buckets) == 1


def test_years_of_samples_stay_small_and_finite() -> None:
    histogram = Histogram()
    for i in range(5000):
        histogram = decay.add(histogram, (1 + i % 97) * 2**24, i * 3 * 3600.0, DAY, decay.MEMORY)
    assert 0 < len(histogram.buckets) <= decay.MAX_BUCKETS
    assert all(0 < w < 1e12 for _, w in histogram.buckets)
    assert decay.percentile(histogram, 0.95, decay.MEMORY) is not None
