"""Kafka entirely down for a while (all three nodes SIGKILLed), then back: nothing is lost.

While Kafka is away the producer keeps accepting posts, buffers them (``queued`` grows, nothing
fails) and says why in its log; the pipeline's processes wait rather than die. Once the nodes are
back, the producer's backlog is delivered and every post ends up as a result or a dead letter, and
the statistics worker computes windows again (after such a kill its local state may be ahead of its
changelog: it must recover by itself, not crash-loop).
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest

from common.contract import SentimentStats
from common.settings import Settings
from producer.producer import PostProducer
from tests.faults.conftest import MEASUREMENTS, ThreeNodes
from tests.faults.support import (
    BROKER_CONNECTION_ERRORS,
    account,
    log_problems,
    mixed_posts,
    pipeline_workers,
    read_all,
    wait_for,
    wait_for_workers,
    wait_until_caught_up,
    wait_until_ready,
)
from tests.processes import running

RATE = 40.0
DOWN_S = 20.0  # the outage lasts until the producer has taken this many seconds' worth of posts
# The producer logs each warning at most once per this many seconds (producer.producer._QuietWarnings), then
# with how many it held back.
WARNING_INTERVAL_S = 10.0
SUPPRESSED = re.compile(r" \(\d+ more like this in the last \d+ s\)$")
# While every node is down, librdkafka and Quix report the lost connections; nothing else may go wrong.
OUTAGE_ERRORS = (*BROKER_CONNECTION_ERRORS, "brokers are down", "Connect to ipv4")
# After every node restarts, a worker's commit may be refused: its membership is gone ("Unknown member"), its
# transactional producer is fatal, or (static membership) the restarted coordinator fences it as if another
# consumer had its group.instance.id (apache/kafka#23542). Each ends the worker; its successor re-reads from the
# last committed offset.
KNOWN_OUTAGE_CRASHES = (
    "Unknown member",
    "Commit failed: Local: Fatal error",
    "Static consumer fenced by other consumer with same group.instance.id",
    # A commit while the consumer has not found the group's coordinator again after the outage (seen once in a
    # fresh-clone run, 17:28 UTC 2026-11-28); retrying the commit in place instead is an open follow-up.
    "Commit failed: Local: Waiting for coordinator",
)


def test_kafka_down_for_a_while_then_back_loses_nothing(
    three_nodes: ThreeNodes, fault_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fault_settings.model_copy(update={"stats_window_seconds": 2, "stats_grace_seconds": 1})
    log = tmp_path / "pipeline.log"
    producer = PostProducer(
        settings, mixed_posts(max_text_chars=settings.max_text_chars), rate=RATE, stats_interval=None
    )
    with (
        caplog.at_level(logging.WARNING, logger="producer.producer"),
        running(settings, "pipeline", "--workers", "1", log=log) as pipeline,
    ):
        wait_until_ready(settings)
        producer.start()
        workers_before = wait_for(
            lambda: pipeline_workers(pipeline) if len(pipeline_workers(pipeline)) == 2 else None,
            30,
            "the classifier and statistics workers",
        )
        wait_for(lambda: producer.stats().delivered >= 2 * RATE, 60, "the stream to flow before the outage")

        three_nodes.cluster.stop(kill=True)
        down_at = time.monotonic()
        before = producer.stats()  # every node is dead: nothing more can be delivered until they are back
        during = wait_for(
            lambda: (s := producer.stats()).sent >= before.sent + RATE * DOWN_S and s,
            3 * DOWN_S,
            "the producer to keep accepting posts while Kafka is down",
        )
        workers_during = pipeline_workers(pipeline)
        supervisor_alive = pipeline.poll() is None

        three_nodes.start()
        back_after, back_at = time.monotonic() - down_at, time.time()
        drained = wait_for(
            lambda: (s := producer.stats()).delivered >= during.sent and s,
            120,
            f"the producer to deliver its backlog (at the outage's end: {during.summary()})",
        )
        windowing_again = wait_for(
            lambda: windows_since(settings, back_at), 120, "statistics of posts made after the outage"
        )
        stats = producer.stop(timeout=60)
        caught_up_in = wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=180)
        # A worker that died of a known outage crash at its last commit may still be in its restart back-off.
        workers_after = wait_for_workers(pipeline, len(workers_before))
        assert pipeline.poll() is None
    assert pipeline.returncode == 0, f"SIGTERM must stop the pipeline cleanly; log: {log}"

    accounting = account(settings)
    report = (
        f"Kafka down: all 3 nodes SIGKILLed, back serving after {back_after:.0f} s, at {RATE:g} posts/s; "
        f"producer buffered {during.queued} posts (sent {during.sent - before.sent} while down, {during.failed} failed), "
        f"backlog delivered {drained.delivered}; pipeline worker restarts: {log.read_text(errors='replace').count(' ended, ')}; "
        f"caught up {caught_up_in:.0f} s after the producer stopped; {accounting.summary()}; "
        f"statistics windows after the outage: {len(windowing_again)}"
    )
    print(report)
    MEASUREMENTS.append(report)

    # The producer: buffered, retried, reported, delivered everything once Kafka was back.
    # Acknowledgements the brokers sent just before the kill may still be counted after it (a CI run saw 79 -> 80);
    # what cannot happen is a post sent while every node is down being delivered before they are back.
    assert during.delivered <= before.sent, "nothing sent while every node is down can be delivered"
    assert during.queued >= during.sent - before.sent, "posts sent while Kafka is down wait in the producer's buffer"
    assert during.failed == 0, "no post may fail within the delivery timeout"
    warnings = [r for r in caplog.records if r.name == "producer.producer" and r.levelno >= logging.WARNING]
    assert any("_ALL_BROKERS_DOWN" in w.getMessage() or "_TRANSPORT" in w.getMessage() for w in warnings), (
        f"the outage must be reported: {[w.getMessage() for w in warnings]}"
    )
    logged_at: dict[str, list[float]] = defaultdict(list)
    for warning in warnings:  # by the warning itself, without the count of those held back since its last time
        logged_at[SUPPRESSED.sub("", warning.getMessage())].append(warning.created)
    repeats = {message: [round(b - a, 1) for a, b in itertools.pairwise(times)] for message, times in logged_at.items()}
    # Reported, not flooded: a repeat of the same warning only after the interval (less the clocks' slew).
    assert all(gap >= WARNING_INTERVAL_S - 0.5 for gaps in repeats.values() for gap in gaps), repeats
    assert (stats.failed, stats.queued) == (0, 0) and stats.delivered == stats.sent

    # The pipeline: waited (its processes lived through the outage) and resumed. Crashes at a commit are known
    # and tolerated, each once per worker (KNOWN_OUTAGE_CRASHES), among them: a worker whose group membership expired while the coordinator was away
    # fails its next commit ("Unknown member"), and a static member (the pipeline's workers are) can be fenced
    # by its own group.instance.id when the group coordinator comes back (a fatal consumer error; the broker bug
    # is apache/kafka#23542). The supervisor restarts it; its posts are read again.
    assert supervisor_alive and workers_during == workers_before, (
        f"the pipeline's workers must wait, not die; log: {log}"
    )
    text = log.read_text(errors="replace")
    ended = re.findall(r" (classify|stats) worker \d+ \(pid \d+\) ended, (.*); restarting in", text)
    unexplained = [cause for _, cause in ended if not any(known in cause for known in KNOWN_OUTAGE_CRASHES)]
    assert not unexplained, f"workers died of something else than the outage: {unexplained}; log: {log}"
    assert len(ended) <= len(workers_before), f"a worker died more than once: {ended}"
    assert len(workers_after) == len(workers_before), "the supervisor runs every worker again"
    # Quix logs the fatal consumer error of a known crash once more, without its cause, as it re-raises it.
    reraised = ("Failed to consume a message from Kafka",) if ended else ()
    assert not log_problems(log, expected=(*OUTAGE_ERRORS, *KNOWN_OUTAGE_CRASHES, "Traceback", *reraised)), (
        f"unexpected errors in {log}"
    )

    # With every broker SIGKILLed at once, librdkafka may bump the idempotent producer's epoch and resend a
    # batch the brokers had in fact written (seen once in two clean-clone runs): a post can then be in the raw
    # topic twice, and so get two results. Counted and reported; nothing may be lost.
    accounting.assert_every_post_accounted_for(raw_duplicates_allowed=True)
    assert len(accounting.produced) == stats.delivered + 1  # + the canary


def windows_since(settings: Settings, since: float) -> list[SentimentStats]:
    """Statistics windows of posts created after ``since`` (an empty list until there are any)."""
    stats = [SentimentStats.model_validate_json(m.value()) for m in read_all(settings, settings.topic_stats)]
    return [window for window in stats if window.window_start >= since]
