"""The server's one watcher of the Kafka cluster: a background thread polls it, pages read its snapshot.

No page talks to Kafka while it renders. However many tabs are open, the cluster is asked once every
``monitor_interval_seconds``, with short timeouts, for its brokers, partitions and offsets, the lag and
members of the pipeline's two consumer groups, the pipeline supervisors' heartbeats, the live sources' latest
statuses and the app's latest choice of model (the control topic). A page renders the latest snapshot at once; when Kafka stops answering,
the snapshot keeps the last good data and says how old it is.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from common.contract import MODEL_CHOICE_KEY, ModelChoice, SourceStatus
from common.settings import Settings
from dashboard.background import BackgroundThread, ThreadHealth
from dashboard.live_sources import SourceStatuses
from dashboard.monitoring import (
    ClusterView,
    GroupView,
    Partition,
    ThroughputTracker,
    TopicPartitionKey,
    cluster_view,
    group_view,
    kafka_error_text,
)
from dashboard.pipeline_health import Heartbeats, PipelineHealth, interpret
from pipeline.application import STATS_GROUP_SUFFIX

logger = logging.getLogger(__name__)

# Each request's timeout: short, so that a poll of a dead cluster ends in seconds, yet long enough for a
# busy broker to answer.
REQUEST_TIMEOUT_SECONDS = 3.0
# Longest a poll spends catching up on the status and control topics; the next poll goes on where it stopped.
HEARTBEAT_READ_SECONDS = 2.0


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the monitor knows, immutable. The data is from the last poll that succeeded."""

    taken_at: float | None  # when the latest poll ended; None until the first one has
    last_success_at: float | None  # when the data below was read; None if Kafka never answered
    error: str | None  # why the latest poll failed; None when it succeeded
    cluster: ClusterView | None
    rates: Mapping[TopicPartitionKey, float | None]  # messages/s per partition since the poll before
    pipeline_group: GroupView | None  # on the posts topic
    stats_group: GroupView | None  # the statistics worker's, on the results topic
    pipeline: PipelineHealth | None
    # What Kafka did not answer although it answered the rest (a group coordinator still loading, say): those
    # parts are from the poll before, or missing.
    problems: tuple[str, ...] = ()
    # The app's latest choice of model on the control topic (None: none made, or withdrawn: the settings decide).
    model_choice: ModelChoice | None = None
    # The control topic has been read to its end at least once: ``model_choice`` is what Kafka holds.
    control_read: bool = False
    # The latest status of each live source on the source status topic, by name (stale ones included).
    sources: tuple[SourceStatus, ...] = ()
    sources_read: bool = False  # the source status topic has been read to its end at least once

    @property
    def kafka_ok(self) -> bool:
        return self.taken_at is not None and self.error is None

    def age(self, now: float) -> float | None:
        """Seconds since the data was read (None: there is none)."""
        return None if self.last_success_at is None else max(now - self.last_success_at, 0.0)


NO_SNAPSHOT = ClusterSnapshot(None, None, None, None, {}, None, None, None)


class StatusTopicReader:
    """Follows the pipeline status topic from its beginning into the latest heartbeat per supervisor, the source
    status topic into the latest status per live source, and the control topic into the latest model choice (all
    compacted: each is read whole once, then followed)."""

    def __init__(self, settings: Settings):
        self.topic = settings.topic_pipeline_status
        self.control_topic = settings.topic_pipeline_control
        self.source_topic = settings.topic_source_status
        self.heartbeats = Heartbeats(settings.consumer_group)
        self.sources = SourceStatuses()
        self.choice: ModelChoice | None = None
        self.read_to_end: set[str] = set()  # the topics read to their end at least once
        self._consumer = Consumer(
            {
                **settings.kafka_client_config(),
                "group.id": f"sentistream-dashboard-status-{uuid.uuid4().hex[:8]}",  # never commits: assign() only
                "enable.auto.commit": False,
                "client.id": "sentistream-dashboard-monitor",
                "error_cb": lambda error: logger.debug("Status reader: %s", error.str()),
            }
        )
        self._assigned: set[tuple[str, int]] = set()

    @property
    def control_read(self) -> bool:
        """The control topic was read to its end at least once: ``choice`` is what Kafka holds."""
        return self.control_topic in self.read_to_end

    @property
    def sources_read(self) -> bool:
        return self.source_topic in self.read_to_end

    @property
    def topics(self) -> tuple[str, str, str]:
        return self.topic, self.control_topic, self.source_topic

    def catch_up(self, partitions: list[Partition], timeout: float) -> None:
        """Read up to the end offsets just polled (or until ``timeout``: the next call goes on)."""
        new = [(p.topic, p.partition) for p in partitions if (p.topic, p.partition) not in self._assigned]
        if new:
            self._consumer.incremental_assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic, p in new])
            self._assigned.update(new)
        # An empty partition has nothing to read; the others are read until the position reaches the end.
        ends = {(p.topic, p.partition): p.end_offset for p in partitions if p.end_offset > p.start_offset}
        deadline = time.monotonic() + timeout
        caught_up = not ends
        while not caught_up and time.monotonic() < deadline:
            positions = self._consumer.position([TopicPartition(topic, p) for topic, p in ends])
            caught_up = all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in positions)
            if caught_up:
                break
            for message in self._consumer.consume(num_messages=500, timeout=0.1):
                if message.error() is None:
                    self._add(message.topic(), message.key(), message.value())
                elif message.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(message.error())
        if caught_up:
            self.read_to_end.update(p.topic for p in partitions)

    def _add(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if topic == self.topic:
            self.heartbeats.add(key, value)
        elif topic == self.source_topic:
            self.sources.add(key, value)
        elif key == MODEL_CHOICE_KEY:  # the control topic; other keys are other instructions (or noise)
            self.choice = parse_choice(value, self.choice)

    def close(self) -> None:
        self._consumer.close()


def parse_choice(value: bytes | None, previous: ModelChoice | None) -> ModelChoice | None:
    """The model choice after a record under MODEL_CHOICE_KEY: a tombstone withdraws it (the settings decide
    again), an invalid value changes nothing (anyone can write to the topic), as the pipeline reads it."""
    if value is None:
        return None
    try:
        return ModelChoice.model_validate_json(value)
    except ValidationError as exc:
        logger.debug("Ignoring a record on the control topic that is not a ModelChoice: %s", exc.errors()[0]["msg"])
        return previous


class ClusterMonitor:
    """Thread-safe; one per server."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.interval = settings.monitor_interval_seconds
        self._lock = threading.Lock()
        self._snapshot = NO_SNAPSHOT
        self._thread = BackgroundThread("cluster-monitor", self._run)

    def start(self) -> ClusterMonitor:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._thread.stop(timeout)

    def snapshot(self) -> ClusterSnapshot:
        with self._lock:
            return self._snapshot

    def thread_health(self) -> ThreadHealth:
        return self._thread.health()

    # --- the monitor's thread -----------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        # Quiet clients: an unreachable cluster is shown on every page and logged once per outage, not per retry.
        admin = AdminClient(
            {
                **self.settings.kafka_client_config(),
                "error_cb": lambda error: logger.debug("Monitor admin client: %s", error.str()),
            }
        )
        status = StatusTopicReader(self.settings)
        throughput = ThroughputTracker()
        try:
            while not stop.is_set():
                self._poll(admin, status, throughput)
                stop.wait(self.interval)
        finally:
            status.close()

    def _poll(self, admin: AdminClient, status: StatusTopicReader, throughput: ThroughputTracker) -> None:
        settings = self.settings
        try:
            cluster = cluster_view(admin, timeout=REQUEST_TIMEOUT_SECONDS)
        except KafkaException as exc:
            self._failed(kafka_error_text(exc))
            return
        previous = self.snapshot()
        problems = []
        groups = {}
        for field, group, topic in (
            ("pipeline_group", settings.consumer_group, settings.topic_posts),
            ("stats_group", settings.consumer_group + STATS_GROUP_SUFFIX, settings.topic_results),
        ):
            try:
                groups[field] = group_view(admin, group, topic, cluster, REQUEST_TIMEOUT_SECONDS)
            except KafkaException as exc:
                groups[field] = getattr(previous, field)
                problems.append(f"consumer group {group}: {kafka_error_text(exc)}")
        try:
            status.catch_up([p for p in cluster.partitions if p.topic in status.topics], HEARTBEAT_READ_SECONDS)
        except KafkaException as exc:
            problems.append(f"status and control topics: {kafka_error_text(exc)}")
        now = time.time()
        members = (
            [member.instance_id for member in groups["pipeline_group"].members] if groups["pipeline_group"] else []
        )
        pipeline = interpret(status.heartbeats.latest(), members, now)
        rates = throughput.update(cluster.end_offsets(), cluster.taken_at)
        snapshot = ClusterSnapshot(
            now,
            now,
            None,
            cluster,
            rates,
            groups["pipeline_group"],
            groups["stats_group"],
            pipeline,
            tuple(problems),
            status.choice,
            status.control_read,
            status.sources.latest(),
            status.sources_read,
        )
        with self._lock:
            recovered = self._snapshot.error is not None
            self._snapshot = snapshot
        if recovered:
            logger.info("Kafka at %s answers again", settings.brokers)
        if problems:
            logger.debug("Kafka answered only in part: %s", "; ".join(problems))
        self._thread.succeeded()

    def _failed(self, error: str) -> None:
        with self._lock:
            first = self._snapshot.error is None
            self._snapshot = replace(self._snapshot, taken_at=time.time(), error=error)
        if first:
            logger.warning(
                "Kafka at %s does not answer (%s); pages show the last snapshot until it does",
                self.settings.brokers,
                error,
            )
