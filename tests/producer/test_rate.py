"""Pacing: the pacer alone, then measured rates of posts landing on the real broker."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Message

from common.settings import Settings
from producer.producer import PostProducer
from producer.rate import RateMeter, RatePacer, normalize_rate
from producer.sources import dataset_posts, synthetic_posts
from common.topic_reader import read_topic

TOLERANCE = 0.05  # the spec: the target rate is met within 5 %


def create_times(messages: list[Message]) -> list[float]:
    """The messages' CreateTime (set by the producer client at send time), in seconds, sorted."""
    return sorted(message.timestamp()[1] / 1000 for message in messages)


def rate_between(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / (end - start)


def test_rate_zero_or_none_is_unlimited_and_negative_is_refused() -> None:
    assert normalize_rate(0) is None and normalize_rate(None) is None and normalize_rate(5) == 5.0
    with pytest.raises(ValueError):
        normalize_rate(-1)
    pacer = RatePacer(None, unlimited_batch=500)
    started = time.monotonic()
    assert sum(pacer.wait() for _ in range(100)) == 50_000
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("rate", [50, 5000])
def test_pacer_alone_meets_the_rate(rate: float) -> None:
    pacer = RatePacer(rate)
    released, started = 0, time.monotonic()
    end = started + 1.0
    while (now := time.monotonic()) < end:
        released += pacer.wait(max_wait=end - now)
    # Item 0 is due at once, so one second holds rate + 1 items.
    assert abs(released - 1 - rate) <= rate * TOLERANCE


def test_set_rate_wakes_a_sleeping_pacer() -> None:
    pacer = RatePacer(0.1)  # the next item is due in 10 s
    assert pacer.wait() == 1
    threading.Timer(0.2, pacer.set_rate, args=(1000,)).start()
    started = time.monotonic()
    assert pacer.wait() == 0  # woken early
    assert time.monotonic() - started < 1
    assert pacer.wait() >= 1


def test_a_stall_is_caught_up_only_up_to_max_lag_and_restart_forgets_it() -> None:
    pacer = RatePacer(100, max_lag=0.5)
    pacer.wait()
    time.sleep(1.5)
    assert pacer.wait() == 50
    time.sleep(0.3)
    pacer.restart()
    assert pacer.wait() == 1


def test_meter_measures_over_its_window() -> None:
    meter = RateMeter(window=1.0, resolution=0.05)
    meter.reset()
    for count in range(0, 101, 10):
        meter.record(count)
        time.sleep(0.05)
    assert 100 / 0.55 * 0.7 < meter.rate(100) < 100 / 0.55 * 1.3
    time.sleep(1.1)
    assert meter.rate(100) == 0.0  # nothing sent for longer than the window


@pytest.mark.parametrize("rate", [200, 2000])
def test_posts_land_at_the_target_rate(settings: Settings, rate: int) -> None:
    stats = PostProducer(settings, dataset_posts(), rate=rate).run(duration=3)
    assert stats.failed == 0 and stats.delivered == stats.sent
    assert abs(stats.sent - 3 * rate) <= 3 * rate * TOLERANCE
    assert abs(stats.rate - rate) <= rate * TOLERANCE  # the producer's own measurement
    times = create_times(read_topic(settings, settings.topic_posts, expected=stats.sent, timeout=30))
    assert len(times) == stats.sent
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert abs(measured - rate) <= rate * TOLERANCE, f"measured {measured:.1f}/s for a target of {rate}/s"


def test_set_rate_while_running_changes_the_measured_rate(settings: Settings) -> None:
    producer = PostProducer(settings, synthetic_posts(), rate=100)
    producer.start()
    time.sleep(2)
    switched_at = time.time()
    producer.set_rate(500)
    time.sleep(2)
    stats = producer.stop(timeout=30)
    assert stats.target_rate == 500 and stats.failed == 0
    times = create_times(read_topic(settings, settings.topic_posts, expected=stats.sent, timeout=30))
    # Windows clear of the start, the switch and the stop; edges cost at most one post each.
    before = rate_between(times, switched_at - 1.7, switched_at - 0.1)
    after = rate_between(times, switched_at + 0.1, switched_at + 1.7)
    assert abs(before - 100) <= 100 * TOLERANCE, before
    assert abs(after - 500) <= 500 * TOLERANCE, after
