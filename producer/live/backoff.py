"""How long a live source waits before it connects again after a failure."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Exponential back-off: ``initial`` seconds after the first failure, doubling up to ``maximum``.

    Each delay is shortened by up to ``jitter`` (a fraction) at random, so that many sources failing together
    do not come back together, and never below ``initial``'s share: no failure is ever retried in a hot loop.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: Callable[[], float] = random.random,
    ):
        if not 0 < initial <= maximum or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1 and 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self.failures = 0  # in a row, since the last reset

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return delay * (1 - self.jitter * self._rng())

    def reset(self) -> None:
        """The connection works again: the next failure waits ``initial`` again."""
        self.failures = 0
