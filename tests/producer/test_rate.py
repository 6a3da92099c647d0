"""Pacing and measuring rates on a clock the test moves: exact counts, no waiting on real time.

The rates the producer reaches on a real broker are measured by ``bench/producer_pacing.py``.
"""

from __future__ import annotations

import threading

import pytest

from producer.rate import RateMeter, RatePacer, normalize_rate


class Clock:
    """A monotonic clock that moves only when the test says; counts how often it was read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def due_now(pacer: RatePacer) -> int:
    """What the pacer releases at this instant, without sleeping (``max_wait=0``)."""
    return pacer.wait(max_wait=0)


def released_over(pacer: RatePacer, clock: Clock, seconds: int, tick_ms: int = 1) -> int:
    """Items released while ``clock`` moves on ``seconds`` (from a whole millisecond) in ticks of ``tick_ms``,
    asking at every tick and at the last instant."""
    start_ms = round(clock.now * 1000)
    end_ms = start_ms + seconds * 1000
    released = 0
    for ms in [*range(start_ms + tick_ms, end_ms, tick_ms), end_ms]:
        clock.now = ms / 1000
        released += due_now(pacer)
    return released


def test_rate_zero_or_none_is_unlimited_and_negative_is_refused() -> None:
    assert normalize_rate(0) is None and normalize_rate(None) is None and normalize_rate(5) == 5.0
    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            normalize_rate(bad)
    clock = Clock()
    pacer = RatePacer(None, unlimited_batch=500, clock=clock)
    assert sum(pacer.wait() for _ in range(100)) == 50_000
    assert clock.reads == 0  # no schedule: nothing is ever waited for


@pytest.mark.parametrize("rate", [50, 5000])
@pytest.mark.parametrize("tick_ms", [1, 7])
def test_one_second_releases_exactly_the_rate(rate: int, tick_ms: int) -> None:
    """Item k falls due at k / rate: the first at once, then ``rate`` per second however coarse the wake-ups."""
    clock = Clock()
    pacer = RatePacer(rate, clock=clock)
    assert due_now(pacer) == 1
    assert due_now(pacer) == 0  # nothing twice
    assert released_over(pacer, clock, seconds=1, tick_ms=tick_ms) == rate
    assert released_over(pacer, clock, seconds=2, tick_ms=tick_ms) == 2 * rate  # no drift


def test_a_sleeping_pacer_is_told_how_long_to_sleep() -> None:
    clock = Clock()
    pacer = RatePacer(4, clock=clock)
    assert due_now(pacer) == 1
    clock.now = 0.2
    assert due_now(pacer) == 0
    clock.now = 0.25  # item 1 is due at 1 / 4 s
    assert due_now(pacer) == 1


def test_a_new_rate_applies_from_the_moment_it_is_set() -> None:
    clock = Clock()
    pacer = RatePacer(100, clock=clock)
    assert due_now(pacer) + released_over(pacer, clock, seconds=1) == 101
    pacer.set_rate(500)  # neither debt nor credit from the old schedule
    assert due_now(pacer) == 1
    assert released_over(pacer, clock, seconds=1) == 500


def test_set_rate_wakes_a_sleeping_pacer() -> None:
    clock = Clock()
    pacer = RatePacer(0.1, clock=clock)  # the next item is due in 10 s of a clock that never moves
    assert pacer.wait() == 1
    returned: list[int] = []
    sleeper = threading.Thread(target=lambda: returned.append(pacer.wait()))
    reads = clock.reads
    sleeper.start()
    while clock.reads == reads and sleeper.is_alive():  # the pacer read its schedule: it sleeps, or is about to
        threading.Event().wait(0.001)
    pacer.set_rate(1000)
    sleeper.join(30)
    assert returned == [0], "woken by the new rate, with nothing due yet"
    assert due_now(pacer) == 1  # the new schedule's first item


def test_interrupt_wakes_a_sleeping_pacer_with_nothing_due() -> None:
    clock = Clock()
    pacer = RatePacer(0.1, clock=clock)
    assert pacer.wait() == 1
    pacer.interrupt()
    assert pacer.wait() == 0
    assert pacer.rate == 0.1


def test_a_stall_is_caught_up_only_up_to_max_lag_and_restart_forgets_it() -> None:
    clock = Clock()
    pacer = RatePacer(100, max_lag=0.5, clock=clock)
    assert due_now(pacer) == 1
    clock.now = 1.5  # 150 items fell due while the loop was stalled
    assert due_now(pacer) == 50  # half a second's worth; the rest is skipped
    assert due_now(pacer) == 0
    clock.now = 1.8
    pacer.restart()
    assert due_now(pacer) == 1
    clock.now = 1.81
    assert due_now(pacer) == 1


def test_meter_measures_over_its_window() -> None:
    clock = Clock()
    meter = RateMeter(window=1.0, resolution=0.04, clock=clock)
    meter.reset()
    for step, count in enumerate(range(0, 101, 10)):
        clock.now = step * 0.05
        meter.record(count)
    clock.now = 0.55
    assert meter.rate(100) == pytest.approx(100 / 0.55)  # from the reset, the oldest sample in the window
    clock.now = 1.26  # samples up to 0.25 s have left the window: the oldest inside is (0.3, 60)
    assert meter.rate(100) == pytest.approx(40 / 0.96)
    clock.now = 1.6
    assert meter.rate(100) == 0.0  # nothing sent for longer than the window


def test_meter_keeps_one_sample_per_resolution() -> None:
    clock = Clock()
    meter = RateMeter(window=1.0, resolution=0.5, clock=clock)
    meter.reset()
    clock.now = 0.1
    meter.record(10)  # within the resolution of the reset: not kept
    clock.now = 0.6
    meter.record(20)
    clock.now = 1.05  # the window holds only what was kept after 0.05 s
    assert meter.rate(30) == pytest.approx(10 / 0.45)
