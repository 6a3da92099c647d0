"""Rates: pacing a send loop at a target rate, and measuring the rate actually achieved."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


def normalize_rate(rate: float | None) -> float | None:
    """``None`` means unlimited; so does 0 (the CLI's ``--rate 0``)."""
    if rate is None or rate == 0:
        return None
    if rate < 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number of posts per second, 0 or None, not {rate!r}")
    return float(rate)


class RatePacer:
    """Tells a send loop how many items are due now so that they go out at ``rate`` per second.

    The schedule is anchored at the last rate change: item ``k`` is due at ``anchor + k / rate``.
    Deriving what is due from the clock, instead of sleeping ``1 / rate`` per item, means sleep
    overshoot never accumulates, and at high rates each wake-up (at least ``min_sleep`` apart)
    releases everything that fell due meanwhile: a small burst per tick. ``clock`` is the monotonic clock
    the schedule runs on.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        min_sleep: float = 0.001,
        max_lag: float = 1.0,
        unlimited_batch: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._rate = normalize_rate(rate)
        self._anchor: float | None = None
        self._issued = 0
        self.min_sleep = min_sleep
        # After a stall (a full queue, a GC pause) at most this many seconds' worth is caught up
        # in a burst; the rest of the backlog is skipped rather than flooding the topic.
        self.max_lag = max_lag
        self.unlimited_batch = unlimited_batch

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Thread-safe; the new rate applies from now on (no debt or credit carried over)."""
        rate = normalize_rate(rate)
        with self._lock:
            self._rate = rate
            self._anchor = None
        self._wake.set()

    def restart(self) -> None:
        """Start a fresh schedule now: nothing is owed for the time before (e.g. between runs)."""
        with self._lock:
            self._anchor = None

    def interrupt(self) -> None:
        """Wake a sleeping :meth:`wait` now (it returns 0), e.g. to stop the loop."""
        self._wake.set()

    def _take_due(self) -> tuple[int, float]:
        """Claim the items due now; also returns how long until the next one is due."""
        with self._lock:
            rate = self._rate
            if rate is None:
                return self.unlimited_batch, 0.0
            now = self._clock()
            if self._anchor is None:
                self._anchor, self._issued = now, 0
            due = math.floor((now - self._anchor) * rate) + 1 - self._issued
            burst_cap = max(1, math.ceil(rate * self.max_lag))
            if due > burst_cap:
                self._issued += due - burst_cap
                due = burst_cap
            if due > 0:
                self._issued += due
                return due, 0.0
            return 0, self._anchor + self._issued / rate - now

    def wait(self, max_wait: float | None = None) -> int:
        """Sleep until items are due, then return how many to send now.

        Returns 0 when woken early (:meth:`set_rate`, :meth:`interrupt`) or after ``max_wait``.
        """
        due, delay = self._take_due()
        if due:
            return due
        delay = max(delay, self.min_sleep)
        if max_wait is not None:
            delay = min(delay, max(max_wait, 0.0))
        if self._wake.wait(delay):
            self._wake.clear()
            return 0
        return self._take_due()[0]


class RateMeter:
    """The rate of a growing counter (e.g. posts sent) over the last ``window`` seconds of ``clock``."""

    def __init__(self, window: float = 5.0, resolution: float = 0.2, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.window = window
        self.resolution = resolution
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, int]] = deque()

    def reset(self, count: int = 0) -> None:
        with self._lock:
            self._samples.clear()
            self._samples.append((self._clock(), count))

    def record(self, count: int) -> None:
        """Note the counter's value; cheap to call often (keeps one sample per ``resolution``)."""
        now = self._clock()
        with self._lock:
            if self._samples and now - self._samples[-1][0] < self.resolution:
                return
            self._samples.append((now, count))
            while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
                self._samples.popleft()

    def rate(self, count: int) -> float:
        """Per second, from the oldest sample inside the window up to ``count`` now."""
        now = self._clock()
        with self._lock:
            inside = [(at, value) for at, value in self._samples if at >= now - self.window]
        if not inside:
            return 0.0
        since, value = inside[0]
        elapsed = now - since
        return (count - value) / elapsed if elapsed > 0 else 0.0
