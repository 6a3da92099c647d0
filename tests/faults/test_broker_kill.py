"""One broker of three SIGKILLed mid-stream, then restarted: every post is one result or one dead letter.

The real pipeline (two classifier workers, the tiny model) and the real producer run against the
session's three-node cluster (replication factor 3, min ISR 2) while one node is killed without
warning: under at-least-once the node coordinating the pipeline's consumer group; under exactly-once a
node leading partitions of the raw topic, and the coordinators (of the group, of the first worker's
transactions), whose death can hang a worker in librdkafka until the pipeline's transaction watchdog
restarts it. The cluster must stay available on two nodes, and once the node is back and the group has
caught up, every post in the raw topic must have exactly one outcome, visible at that moment as any
downstream reader reads it (``read_committed``: no transaction left open): exactly once with
``exactly-once``, at least once (duplicates counted and reported) with ``at-least-once``.
"""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from common.contract import RejectReason
from common.settings import Settings
from common.topics import admin_client, group_lag
from pipeline.instance import WorkerIdentity
from producer.producer import PostProducer
from tests.faults.conftest import MEASUREMENTS, ThreeNodes
from tests.faults.support import (
    BROKER_CONNECTION_ERRORS,
    account,
    group_coordinator,
    hidden_output,
    log_problems,
    mixed_posts,
    pipeline_workers,
    read_all,
    transaction_coordinator,
    wait_for,
    wait_until_caught_up,
    wait_until_ready,
)
from tests.processes import running

# What a worker stuck in a transaction and its supervisor say when the watchdog ends it.
WATCHDOG_EXIT = ("Stuck in Kafka", "exit code 75", "restarting in")
# Why a worker may end when a coordinator dies: the watchdog (exit 75), or a fatal transactional error once the
# coordinator has moved (seen: INVALID_TXN_STATE on the abort of a rebalance), which only a new producer clears.
COORDINATOR_FAILOVER_EXITS = ("exit code 75", "FATAL")
FATAL_TRANSACTION_ERRORS = ("Error during Kafka transaction operation",)
# Under at-least-once, Quix ends a worker whose offset commit the dying group coordinator refused (seen once in
# four CI runs); its successor re-reads from the last committed offset, so the cost is duplicates, never a loss.
REFUSED_COMMIT_EXITS = ("CheckpointConsumerCommitError",)
RATE = 40.0  # posts/s: steady, well within what two tiny-model workers score on two busy cores
# While the node is down, the stream must go on: this many seconds' worth of posts delivered and (unless a
# worker may restart meanwhile) scored before it comes back; as much again delivered after.
DOWN_S = 12.0
AFTER_RESTART_S = 5.0


def choose_victim(settings: Settings, role: str) -> int:
    coordinator = group_coordinator(settings, settings.consumer_group)
    assert coordinator is not None, "the pipeline's group has no coordinator"
    if role == "group-coordinator":
        return coordinator
    if role == "transaction-coordinator":
        # The supervisor of a fresh state directory is instance <host>-0; its first worker is classify slot 0.
        member = WorkerIdentity(f"{socket.gethostname()}-0", "classify", 0).member
        return transaction_coordinator(settings, f"{settings.consumer_group}-{member}")
    metadata = admin_client(settings).list_topics(settings.topic_posts, timeout=10)
    leaders = Counter(p.leader for p in metadata.topics[settings.topic_posts].partitions.values())
    return next(node for node, _ in leaders.most_common() if node != coordinator)


@pytest.mark.parametrize(
    ("guarantee", "victim_role"), [("at-least-once", "group-coordinator"), ("exactly-once", "partition-leader")]
)
def test_a_broker_killed_mid_stream_and_restarted_loses_nothing(
    guarantee: str, victim_role: str, three_nodes: ThreeNodes, fault_settings: Settings, tmp_path: Path
) -> None:
    exits = REFUSED_COMMIT_EXITS if victim_role == "group-coordinator" else ()
    kill_one_broker_mid_stream(guarantee, victim_role, three_nodes, fault_settings, tmp_path, exits_allowed=exits)


@pytest.mark.parametrize("coordinator", ["group-coordinator", "transaction-coordinator"])
def test_exactly_once_survives_the_death_of_a_coordinator(
    coordinator: str, three_nodes: ThreeNodes, fault_settings: Settings, tmp_path: Path
) -> None:
    # librdkafka #5511/#5456: send_offsets_to_transaction() may never return once the group coordinator is gone,
    # and commit_transaction() waits out its whole timeout on a dead transaction coordinator (seen here: 60 s,
    # with the new coordinator elected within 10 s); the watchdog then ends the worker and the supervisor starts
    # a fresh one, which finds the new coordinator.
    settings = fault_settings.model_copy(update={"transaction_stall_seconds": 15.0})
    kill_one_broker_mid_stream(
        "exactly-once", coordinator, three_nodes, settings, tmp_path, exits_allowed=COORDINATOR_FAILOVER_EXITS
    )


def kill_one_broker_mid_stream(
    guarantee: str,
    victim_role: str,
    three_nodes: ThreeNodes,
    fault_settings: Settings,
    tmp_path: Path,
    exits_allowed: tuple[str, ...] = (),
) -> None:
    """``exits_allowed``: what may end a worker while the node is down (parts of the supervisor's "ended, ..."
    line); with none, no worker may end."""
    settings = fault_settings.model_copy(update={"processing_guarantee": guarantee})
    log = tmp_path / "pipeline.log"
    producer = PostProducer(
        settings, mixed_posts(max_text_chars=settings.max_text_chars), rate=RATE, stats_interval=None
    )
    with running(settings, "pipeline", "--workers", "2", "--no-stats", log=log) as pipeline:
        wait_until_ready(settings)
        producer.start()
        workers_before = wait_for(
            lambda: pipeline_workers(pipeline) if len(pipeline_workers(pipeline)) == 2 else None, 30, "two workers"
        )
        results_before = len(read_all(settings, settings.topic_results))
        wait_for(
            lambda: len(read_all(settings, settings.topic_results)) >= results_before + 2 * RATE,
            60,
            "the stream to flow before the kill",
            interval=1.0,
        )
        victim = choose_victim(settings, victim_role)

        three_nodes.kill(victim)
        killed_at = time.monotonic()
        delivered_at_kill = producer.stats().delivered
        results_at_kill = len(read_all(settings, settings.topic_results))
        # Two of three nodes hold min ISR: producing and processing go on while the node is down.
        wait_for(
            lambda: producer.stats().delivered >= delivered_at_kill + RATE * DOWN_S,
            120,
            "the producer to keep delivering with one node of three down",
            interval=1.0,
        )
        if "exit code 75" not in exits_allowed:  # a worker the watchdog ends stalls its partitions for a while
            wait_for(
                lambda: len(read_all(settings, settings.topic_results)) >= results_at_kill + RATE * DOWN_S,
                120,
                "the pipeline to keep processing with one node of three down",
                interval=1.0,
            )
        delivered_while_down = producer.stats().delivered - delivered_at_kill
        results_while_down = len(read_all(settings, settings.topic_results)) - results_at_kill

        three_nodes.start(victim)
        restarted_after = time.monotonic() - killed_at
        delivered_at_restart = producer.stats().delivered
        wait_for(
            lambda: producer.stats().delivered >= delivered_at_restart + RATE * AFTER_RESTART_S,
            120,
            "the stream to go on with the node back",
            interval=1.0,
        )
        stats = producer.stop(timeout=120)
        caught_up_in = wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=120)
        assert group_lag(settings, settings.consumer_group, settings.topic_posts) == 0
        hidden = hidden_output(settings)
        workers_after = pipeline_workers(pipeline)
        assert pipeline.poll() is None, "the pipeline must survive a broker crash"
    assert pipeline.returncode == 0, f"SIGTERM must stop the pipeline cleanly; log: {log}"

    assert (stats.failed, stats.queued) == (0, 0), f"the producer lost posts: {stats.summary()}"
    accounting = account(settings)
    restarts = len(set(workers_before) - set(workers_after))
    report = (
        f"broker kill, {guarantee}: node {victim} ({victim_role}) SIGKILLed for {restarted_after:.0f} s at {RATE:g} posts/s; "
        f"{accounting.summary()}; delivered/processed while down: {delivered_while_down}/{results_while_down}; "
        f"worker restarts: {restarts}; caught up {caught_up_in:.0f} s after the producer stopped"
    )
    print(report)
    MEASUREMENTS.append(report)

    assert hidden == {settings.topic_results: {}, settings.topic_dead_letters: {}}, (
        f"open transactions hide results from read_committed readers after catch-up: {hidden}"
    )
    accounting.assert_every_post_accounted_for()
    assert sum(accounting.produced.values()) == stats.delivered + 1  # + the canary
    letters = read_all(settings, settings.topic_dead_letters)
    assert letters and all(RejectReason.TEXT_TOO_LONG.value in m.value().decode() for m in letters)
    text = log.read_text(errors="replace")
    ended = re.findall(r" classify worker \d+ \(pid \d+\) ended, (.*); restarting in", text)
    assert len(ended) >= restarts
    unexplained = [cause for cause in ended if not any(known in cause for known in exits_allowed)]
    assert not unexplained, (
        f"workers ended for another reason than the {victim_role}'s death: {unexplained}; log: {log}"
    )
    # Each error that ends a worker leaves one traceback (the watchdog's exit 75 none); no other may appear.
    assert text.count("Traceback (most recent call last)") == sum("exit code 75" not in cause for cause in ended), (
        f"log: {log}"
    )
    expected = (
        *BROKER_CONNECTION_ERRORS,
        *exits_allowed,
        *(WATCHDOG_EXIT if "exit code 75" in exits_allowed else ()),
        *(FATAL_TRANSACTION_ERRORS if "FATAL" in exits_allowed else ()),
        *(("Traceback (most recent call last)",) if ended else ()),
    )
    assert not log_problems(log, expected=expected), f"unexpected errors in {log}"
    if guarantee == "exactly-once":
        assert accounting.duplicates == 0, f"exactly-once produced duplicates: {accounting.summary()}"
