"""Decaying histograms, as the VPA recommender keeps usage: pure, time passed in.

Each value falls in an exponential bucket (bucket i holds [first x ratio^i, first x
ratio^(i+1)), 5% wide, so a percentile is at most 5% above the truth, never below). A sample
taken at Unix time t weighs 2^((t - reference) / half_life): a run one half-life older counts
half as much. Only ratios of weights matter, so the reference moves forward (and every weight
is scaled down with it) before the numbers grow large. Buckets holding less than a thousandth of
the total weight are dropped: that is how an old peak fades out of the percentile, and it keeps
a histogram to a few dozen buckets, whatever it has seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from podtier.webhook.core.profile import Histogram

MIN_SHARE = 1e-3
MAX_BUCKETS = 48
MAX_EXPONENT = 32.0  # half-lives between the reference and a sample before the reference moves


@dataclass(frozen=True)
class Buckets:
    first: float  # the upper end of bucket 0
    ratio: float
    top: int  # the last bucket: values above it go there

    def index(self, value: float) -> int:
        if value < self.first:
            return 0
        return min(int(math.log(value / self.first) / math.log(self.ratio)) + 1, self.top)

    def end(self, index: int) -> int:
        """The upper end of bucket `index`, rounded up."""
        return math.ceil(self.first * self.ratio**index)


MEMORY = Buckets(first=2**20, ratio=1.05, top=430)  # bytes: 1Mi .. about 1.3Pi
CPU = Buckets(first=1.0, ratio=1.05, top=340)  # millicores: 1m .. about 16,000 cores


def add(
    histogram: Histogram, value: float, when: float, half_life: float, buckets: Buckets
) -> Histogram:
    """`histogram` with `value` sampled at Unix time `when` (`half_life` in seconds)."""
    weights = dict(histogram.buckets)
    reference = histogram.reference if weights else when
    if (when - reference) / half_life > MAX_EXPONENT:
        scale = 2.0 ** (-(when - reference) / half_life)
        weights = {i: w * scale for i, w in weights.items()}
        reference = when
    index = buckets.index(value)
    weights[index] = weights.get(index, 0.0) + 2.0 ** ((when - reference) / half_life)
    return Histogram(reference, _pruned(weights))


def percentile(histogram: Histogram, share: float, buckets: Buckets) -> int | None:
    """The smallest bucket end with at least `share` of the weight at or below it; None when
    the histogram is empty."""
    if not histogram.buckets:
        return None
    ordered = sorted(histogram.buckets)
    total = sum(w for _, w in ordered)
    running = 0.0
    for index, weight in ordered:
        running += weight
        if running >= share * total * (1 - 1e-9):
            return buckets.end(index)
    return buckets.end(ordered[-1][0])


def _pruned(weights: dict[int, float]) -> tuple[tuple[int, float], ...]:
    total = sum(weights.values())
    kept = sorted(weights.items(), key=lambda item: -item[1])[:MAX_BUCKETS]
    return tuple(
        sorted((i, float(f"{w:.6g}")) for i, w in kept if w >= MIN_SHARE * total and w > 0)
    )
