"""A token bucket: at most `burst` actions at once, and `rate` per second on average.

Time comes from an injected clock, so tests run it on a fake clock and count tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def try_take(self) -> float:
        """Take a token if one is there (returns 0.0); otherwise the seconds until one is."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0 - 1e-9:  # float rounding must not leave a sliver to wait for
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def take(self, sleep: Callable[[float], object]) -> None:
        """Wait (with `sleep`) until a token is there, and take it."""
        while (wait := self.try_take()) > 0:
            sleep(wait)
