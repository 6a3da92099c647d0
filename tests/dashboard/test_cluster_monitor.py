"""The server's background threads against the session's real Kafka: the cluster monitor and the results feed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from common.contract import MODEL_CHOICE_KEY, ModelChoice, WorkerState
from common.settings import Settings
from common.topics import admin_client, group_lag
from dashboard import cluster_monitor
from dashboard.cluster_monitor import ClusterMonitor, ClusterSnapshot
from dashboard.monitoring import Partition
from dashboard.pipeline_health import PipelineState
from dashboard.results_feed import ResultsFeed
from pipeline.application import STATS_GROUP_SUFFIX
from tests.dashboard.heartbeats import heartbeat, publish, worker
from tests.dashboard.samples import result_json
from tests.waiting import wait_for


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"monitor_interval_seconds": 0.2})


@pytest.fixture
def monitor(fast: Settings) -> Iterator[ClusterMonitor]:
    running = ClusterMonitor(fast).start()
    yield running
    running.stop()


def fresh_snapshot(monitor: ClusterMonitor) -> ClusterSnapshot:
    """A complete snapshot of a poll that started after this call (the second one to end after it, or later).

    Complete: on a fresh cluster the group coordinator needs a moment before it describes groups.
    """
    since = monitor.snapshot().taken_at or 0.0
    started_after = wait_for(
        lambda: (s := monitor.snapshot()).kafka_ok and s.taken_at > since and s, 30, "a new snapshot"
    )
    return wait_for(
        lambda: (s := monitor.snapshot()).kafka_ok and s.taken_at > started_after.taken_at and not s.problems and s,
        30,
        "a complete new snapshot",
    )


def test_the_snapshot_holds_brokers_partitions_offsets_and_both_groups(monitor: ClusterMonitor, fast: Settings) -> None:
    producer = Producer(fast.kafka_client_config())
    for i in range(12):
        producer.produce(fast.topic_posts, b"{}", b"k", partition=i % 2)
    assert producer.flush(10) == 0
    snapshot = fresh_snapshot(monitor)
    posts = [p for p in snapshot.cluster.partitions if p.topic == fast.topic_posts]
    assert [(p.partition, p.end_offset) for p in posts[:3]] == [(0, 6), (1, 6), (2, 0)]
    assert len(posts) == fast.posts_partitions and all(p.leader == 1 and p.in_sync == (1,) for p in posts)
    assert {p.topic for p in snapshot.cluster.partitions} >= {
        fast.topic_results,
        fast.topic_dead_letters,
        fast.topic_pipeline_status,
    }
    assert (snapshot.pipeline_group.group, snapshot.pipeline_group.total_lag) == (fast.consumer_group, 12)
    assert snapshot.stats_group.group == fast.consumer_group + STATS_GROUP_SUFFIX
    assert snapshot.pipeline.state is PipelineState.NOT_RUNNING
    # Throughput is the growth of end offsets between two polls of the monitor (not per tab): with posts
    # flowing into partition 0 all along, every poll sees it grow, and partition 1 stand still.
    stop = threading.Event()

    def write_steadily() -> None:
        while not stop.is_set():
            producer.produce(fast.topic_posts, b"{}", b"k", partition=0)
            producer.flush(10)

    writer = threading.Thread(target=write_steadily)
    writer.start()
    try:
        rates = fresh_snapshot(monitor).rates
    finally:
        stop.set()
        writer.join()
    assert rates[(fast.topic_posts, 0)] > 0 and rates[(fast.topic_posts, 1)] == 0.0


def test_lag_counts_from_the_committed_offset_or_the_first_retained_one(
    monitor: ClusterMonitor, fast: Settings
) -> None:
    producer = Producer(fast.kafka_client_config())
    for _ in range(10):
        producer.produce(fast.topic_posts, b"{}", b"k", partition=0)
    for _ in range(5):
        producer.produce(fast.topic_posts, b"{}", b"k", partition=1)
    assert producer.flush(10) == 0
    # Retention took partition 0's first 4 posts; the group committed on partition 1 only, at offset 2.
    admin = admin_client(fast)  # held: the futures of a collected client never resolve
    deleted = admin.delete_records([TopicPartition(fast.topic_posts, 0, 4)])
    assert [future.result(timeout=30).low_watermark for future in deleted.values()] == [4]
    committer = Consumer({**fast.kafka_client_config(), "group.id": fast.consumer_group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(fast.topic_posts, 1, 2)], asynchronous=False)
    committer.close()

    lag = {p.partition: (p.committed, p.lag) for p in fresh_snapshot(monitor).pipeline_group.lag}
    assert (lag[0], lag[1], lag[2]) == ((None, 6), (2, 3), (None, 0))
    assert group_lag(fast, fast.consumer_group, fast.topic_posts) == 9  # the same definition, the same answer


def test_the_pipeline_state_follows_the_heartbeats_on_the_status_topic(monitor: ClusterMonitor, fast: Settings) -> None:
    def state_after(*records) -> ClusterSnapshot:
        publish(fast, *records)
        return fresh_snapshot(monitor)

    group = fast.consumer_group
    running = heartbeat(worker(0), worker(1), worker(2, role="stats"), group=group, instance="sup-1")
    assert (state_after(running).pipeline.state, monitor.snapshot().pipeline.workers) == (PipelineState.RUNNING, 2)

    looping = worker(
        1,
        WorkerState.CRASH_LOOPING,
        restarts=4,
        restarts_total=9,
        last_error="RuntimeError: boom",
        stuck_at=f"{fast.topic_posts}[3]@17",
        careful=True,
    )
    snapshot = state_after(heartbeat(worker(0), looping, group=group, instance="sup-1"))
    assert snapshot.pipeline.state is PipelineState.CRASH_LOOPING
    assert [item.worker for item in snapshot.pipeline.troubled] == [looping]

    # Whatever else lands on the topic changes nothing: garbage, another group's supervisor, a key without a value.
    snapshot = state_after(
        (b"sup-1", b"\x00garbage"), (None, b"[]"), heartbeat(worker(0), group="another-group"), (b"nobody", None)
    )
    assert snapshot.pipeline.state is PipelineState.CRASH_LOOPING

    stopping = heartbeat(
        worker(0, WorkerState.STOPPED), worker(1, WorkerState.STOPPED), group=group, instance="sup-1", stopping=True
    )
    assert state_after(stopping).pipeline.state is PipelineState.STOPPED

    # A new monitor (a server restart) reads the topic from its beginning: the latest word per supervisor.
    again = ClusterMonitor(fast).start()
    try:
        assert fresh_snapshot(again).pipeline.state is PipelineState.STOPPED
    finally:
        again.stop()


def test_the_monitor_outlives_an_unexpected_error(
    monitor: ClusterMonitor, fast: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_snapshot(monitor)
    real = cluster_monitor.interpret
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster_monitor, "interpret", fails_once)
    with caplog.at_level(logging.ERROR, logger="dashboard.background"):
        health = wait_for(lambda: (h := monitor.thread_health()).restarts and h, 30, "a restart")
        assert health.failing and health.last_error == "RuntimeError: injected"
        assert "cluster-monitor stopped by an unexpected error" in caplog.text
    recovered = fresh_snapshot(monitor)
    health = monitor.thread_health()
    assert (health.failing, health.restarts) == (False, 1) and health.last_success_at >= recovered.taken_at


def test_the_results_feed_outlives_an_unexpected_error_and_counts_nothing_twice(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = Producer(settings.kafka_client_config())
    for i in range(20):
        producer.produce(settings.topic_results, result_json(f"p{i}"), b"ann")
    letter = (
        b'{"reason": "invalid_json", "detail": "bad", "payload_base64": "", "payload_preview": "x", "key": null,'
        b' "source_topic": "posts.raw", "partition": 0, "offset": 7, "failed_at": 1.0}'
    )
    producer.produce(settings.topic_dead_letters, letter, b"k")
    assert producer.flush(10) == 0

    real = ResultsFeed.ingest_dead_letters
    calls = []

    def fails_after_ingesting_once(self, values):
        real(self, values)
        calls.append(1)
        if len(calls) == 1:  # the worst moment: counted, but not yet remembered as read
            raise RuntimeError("injected")

    monkeypatch.setattr(ResultsFeed, "ingest_dead_letters", fails_after_ingesting_once)
    feed = ResultsFeed(settings, dedup_size=5).start()  # remembers too few ids to hide a rewind
    try:
        wait_for(
            lambda: feed.status().thread.restarts == 1 and feed.status().thread.last_success_at,
            60,
            "a restart and a success",
        )
        producer.produce(settings.topic_results, result_json("after"), b"ann")
        producer.flush(10)
        status = wait_for(lambda: (s := feed.status()).results == 21 and s, 30, "the result sent after the restart")
        assert (status.dead_letters, status.thread.failing, status.thread.last_error) == (
            1,
            False,
            "RuntimeError: injected",
        )
    finally:
        feed.stop()


def test_the_snapshot_holds_the_latest_model_choice_of_the_control_topic(
    monitor: ClusterMonitor, fast: Settings
) -> None:
    def choice_after(*records: tuple[bytes | None, bytes | None]) -> ClusterSnapshot:
        producer = Producer(fast.kafka_client_config())
        for key, value in records:
            producer.produce(fast.topic_pipeline_control, value, key)
        assert producer.flush(10) == 0
        return fresh_snapshot(monitor)

    first = fresh_snapshot(monitor)
    assert (first.control_read, first.model_choice) == (True, None)  # read to its end: no choice made
    chosen = ModelChoice(model="sentistream-quick", chosen_at=1.0, by="test")
    assert choice_after((MODEL_CHOICE_KEY, chosen.to_bytes())).model_choice == chosen
    # What is not a choice under its key changes nothing; the last valid one wins.
    later = ModelChoice(model="auto", chosen_at=2.0)
    snapshot = choice_after(
        (MODEL_CHOICE_KEY, b"\x00garbage"), (b"other-instruction", later.to_bytes()), (None, later.to_bytes())
    )
    assert snapshot.model_choice == chosen
    assert choice_after((MODEL_CHOICE_KEY, later.to_bytes())).model_choice == later
    # A tombstone withdraws the choice: the settings decide again.
    assert choice_after((MODEL_CHOICE_KEY, None)).model_choice is None
    # A new monitor (a server restart) reads the topic from its beginning to the same answer.
    choice_after((MODEL_CHOICE_KEY, chosen.to_bytes()))
    again = ClusterMonitor(fast).start()
    try:
        assert fresh_snapshot(again).model_choice == chosen
    finally:
        again.stop()


def test_the_choice_is_known_only_once_the_control_topic_is_read_to_its_end(fast: Settings) -> None:
    producer = Producer(fast.kafka_client_config())
    producer.produce(fast.topic_pipeline_control, ModelChoice(model="auto", chosen_at=1.0).to_bytes(), MODEL_CHOICE_KEY)
    assert producer.flush(10) == 0
    control = Partition(fast.topic_pipeline_control, 0, 1, (1,), (1,), 0, 1)
    reader = cluster_monitor.StatusTopicReader(fast)
    try:
        reader.catch_up([control], timeout=0)  # no time to read: "no choice" would be a guess
        assert (reader.control_read, reader.choice) == (False, None)
        wait_for(lambda: reader.catch_up([control], timeout=1) or reader.control_read, 30, "the topic read to its end")
        assert reader.choice == ModelChoice(model="auto", chosen_at=1.0)
    finally:
        reader.close()
