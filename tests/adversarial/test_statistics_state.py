"""The statistics worker recovers by itself when its local windows are ahead of their changelog.

Seen on a three-node cluster after every node was SIGKILLed at once: the changelog lost its tail, the
local state store remembered more, and Quix refused to start (``InvalidStoreChangelogOffset``) at every
restart, forever, while the dashboard showed nothing. Here the same mismatch is made on purpose: the
worker's changelog topics are cut back to their first record while it is stopped. It must drop its local
state, restore it from the changelog, say so (log and heartbeat), and compute windows again.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, NewTopic

from common.contract import PipelineStatus, SentimentResult, SentimentStats
from common.settings import Settings
from common.topics import admin_client
from pipeline.application import STATS_GROUP_SUFFIX
from tests.faults.support import log_problems, read_all, wait_for, wait_until_caught_up
from tests.processes import running
from tests.topic_writer import send

WINDOW_S = 1


def results(source: str, start: float, count: int) -> list[SentimentResult]:
    """Results keyed (by author) on their source, so each source's arrive in order: no result comes too late."""
    return [
        SentimentResult(
            post_id=uuid.uuid4().hex,
            author=source,
            source=source,
            text="t",
            label="POSITIVE",
            score=0.5,
            model="m",
            created_at=start + i * 0.25,
            produced_at=start,
            processed_at=start,
        )
        for i in range(count)
    ]


def send_results(settings: Settings, batch: list[SentimentResult]) -> None:
    send(settings, [(result.author.encode(), result.to_bytes()) for result in batch], settings.topic_results)


def windows(settings: Settings) -> set[tuple[str, float]]:
    return {
        (s.source, s.window_start)
        for s in (SentimentStats.model_validate_json(m.value()) for m in read_all(settings, settings.topic_stats))
    }


def cut_changelogs_to_their_first_record(settings: Settings) -> dict[str, int]:
    """Delete each changelog topic of the statistics worker and write back only its partitions' first records,
    as a cluster that lost the changelog's tail would have it. Returns records per changelog before the cut."""
    admin = admin_client(settings)
    prefix = f"changelog__{settings.consumer_group}{STATS_GROUP_SUFFIX}"
    topics = {name: meta for name, meta in admin.list_topics(timeout=10).topics.items() if name.startswith(prefix)}
    assert topics, "the statistics worker has no changelog"
    before = {}
    for name, meta in topics.items():
        messages = read_all(settings, name)
        firsts = {}
        for message in messages:
            firsts.setdefault(message.partition(), message)
        before[name] = len(messages)
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = {"cleanup.policy": admin.describe_configs([resource])[resource].result()["cleanup.policy"].value}
        admin.delete_topics([name])[name].result()
        wait_for(lambda name=name: name not in admin.list_topics(timeout=10).topics, 60, f"{name} to be deleted")
        while True:  # the broker may still be removing the old one
            try:
                admin.create_topics([NewTopic(name, len(meta.partitions), 1, config=config)])[name].result()
                break
            except Exception as exc:
                assert "already exists" in str(exc).lower() or "marked for deletion" in str(exc).lower(), exc
                time.sleep(0.5)
        producer = Producer(settings.kafka_client_config())
        for partition, message in firsts.items():
            producer.produce(name, message.value(), message.key(), partition=partition, headers=message.headers())
        assert producer.flush(30) == 0
    return before


def reset_reported(status: PipelineStatus) -> PipelineStatus | None:
    return status if status.workers[0].state_resets else None


def latest_status(settings: Settings) -> PipelineStatus:
    return [PipelineStatus.model_validate_json(m.value()) for m in read_all(settings, settings.topic_pipeline_status)][
        -1
    ]


def test_statistics_state_ahead_of_its_changelog_is_dropped_and_restored(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(
        update={"stats_window_seconds": WINDOW_S, "stats_grace_seconds": 0, "status_interval_seconds": 1.0}
    )
    stats_group = settings.consumer_group + STATS_GROUP_SUFFIX
    start = float(int(time.time()) - 3600)  # whole seconds: the windows start where the results do
    first = results("alpha", start, 24) + results("beta", start, 24)
    # A result far later closes the windows before it (each source's stream time runs on its own).
    closing = results("alpha", start + 100, 1) + results("beta", start + 100, 1)
    log = tmp_path / "pipeline.log"
    with running(settings, "pipeline", "--workers", "0", log=log):
        send_results(settings, first + closing)
        wait_until_caught_up(settings, stats_group, settings.topic_results, timeout=120)
        computed = wait_for(
            lambda: windows(settings) if len(windows(settings)) >= 12 else None, 60, "the first windows"
        )
    records = cut_changelogs_to_their_first_record(settings)
    assert max(records.values()) > 1, f"nothing to cut: {records}"

    later = start + 1000
    with running(settings, "pipeline", "--workers", "0", log=log):
        send_results(settings, results("gamma", later, 8) + results("gamma", later + 100, 1))
        wait_until_caught_up(settings, stats_group, settings.topic_results, timeout=120)
        new = wait_for(
            lambda: g if len(g := {w for w in windows(settings) if w[0] == "gamma"}) >= 2 else None,
            120,
            "both windows after the reset",
        )
        status = wait_for(lambda: reset_reported(latest_status(settings)), 60, "the heartbeat to report the reset")
    assert new == {("gamma", later), ("gamma", later + 1)}
    assert computed == {(source, start + second) for source in ("alpha", "beta") for second in range(6)}
    [worker] = status.workers
    assert (worker.role, worker.state.value, worker.state_resets, worker.restarts) == ("stats", "running", 1, 0)
    text = log.read_text(errors="replace")
    assert text.count("dropped its local state to restore it from the changelog") == 1
    # Quix logs the refusal (one error and its traceback) before the worker handles it; nothing else may go wrong.
    assert (
        text.count("Traceback (most recent call last)") == 1
        and "quixstreams.state.exceptions.InvalidStoreChangelogOffset" in text
    )
    refusal = ('Failed to consume a message from Kafka: partition="None[None]"', "Traceback (most recent call last)")
    assert not log_problems(log, expected=refusal), f"unexpected errors in {log}"
