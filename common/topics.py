"""The project's topics, provisioned idempotently: ``python -m common.topics``."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common.logs import configure_logging
from common.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    week_ms = str(7 * 24 * 3600 * 1000)
    return [
        TopicSpec(settings.topic_posts, settings.posts_partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.topic_results, settings.results_partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.topic_dead_letters, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(settings.topic_stats, 1, {"retention.ms": week_ms}),
        # The latest heartbeat of each supervisor; a day of history at most.
        TopicSpec(
            settings.topic_pipeline_status,
            1,
            {"cleanup.policy": "compact,delete", "retention.ms": str(24 * 3600 * 1000)},
        ),
        # The app's latest choice of model: kept until replaced (compacted, never deleted by age).
        TopicSpec(settings.topic_pipeline_control, 1, {"cleanup.policy": "compact"}),
        # The latest status of each live source; a day of history at most.
        TopicSpec(
            settings.topic_source_status,
            1,
            {"cleanup.policy": "compact,delete", "retention.ms": str(24 * 3600 * 1000)},
        ),
    ]


class KafkaUnreachable(RuntimeError):
    """No broker answered at the configured bootstrap servers."""


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_client_config())


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create whichever project topics are missing; returns the names created (none on a re-run)."""
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnreachable(
            f"Kafka at {settings.brokers} did not answer within {timeout:.0f} s ({exc.args[0].str()}). "
            "Start local Kafka (`make kafka-start`) or fix SENTISTREAM_BOOTSTRAP_SERVERS."
        ) from None
    # Set it explicitly where brokers may be down at provisioning time: a guess from the live ones sticks.
    replication = settings.replication_factor or min(3, len(metadata.brokers))
    missing = [spec for spec in topic_specs(settings) if spec.name not in metadata.topics]
    if not missing:
        return []
    new_topics = []
    for spec in missing:
        config = dict(spec.config)
        if replication >= 3:  # one replica may fail without refusing acks=all writes
            config["min.insync.replicas"] = "2"
        new_topics.append(NewTopic(spec.name, spec.partitions, replication, config=config))
    futures = admin.create_topics(new_topics, request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
            logger.info("Created topic %s (replication factor %d)", name, replication)
        except Exception as exc:  # a concurrent creator wins the race: that is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    wait_until_served(admin, [spec.name for spec in missing], timeout)
    return created


def wait_until_served(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until every partition of ``names`` has a leader: creation returns before the brokers learn of it."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        waiting = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or not topics[name].partitions
            or any(p.leader < 0 for p in topics[name].partitions.values())
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            logger.warning("Topics created but not yet served after %.0f s: %s", timeout, ", ".join(waiting))
            return
        time.sleep(0.1)


def with_own_topics(settings: Settings) -> Settings:
    """A copy of ``settings`` with topics and a consumer group of its own, created here.

    Tests and benchmarks run side by side on one cluster; unique names keep their messages and offsets apart.
    """
    suffix = uuid.uuid4().hex[:8]
    isolated = settings.model_copy(
        update={
            "topic_posts": f"{settings.topic_posts}.{suffix}",
            "topic_results": f"{settings.topic_results}.{suffix}",
            "topic_dead_letters": f"{settings.topic_dead_letters}.{suffix}",
            "topic_stats": f"{settings.topic_stats}.{suffix}",
            "topic_pipeline_status": f"{settings.topic_pipeline_status}.{suffix}",
            "topic_pipeline_control": f"{settings.topic_pipeline_control}.{suffix}",
            "topic_source_status": f"{settings.topic_source_status}.{suffix}",
            "consumer_group": f"{settings.consumer_group}-{suffix}",
        }
    )
    ensure_topics(isolated)
    return isolated


def partition_lag(end_offset: int, committed: int | None, start_offset: int) -> int:
    """Messages of one partition a consumer group has still to read: end offset - committed offset.

    The project's one definition of lag (the dashboard's and ``group_lag``). A partition the group never
    committed on (``committed`` None or negative, librdkafka's OFFSET_INVALID) counts from its first retained
    offset, as does one whose committed offset retention has deleted: what is gone waits for no one.
    """
    base = committed if committed is not None and committed >= 0 else start_offset
    return max(end_offset - max(base, start_offset), 0)


def group_lag(settings: Settings, group: str, topic: str) -> int | None:
    """Messages of ``topic`` not yet committed by ``group`` (None when Kafka cannot tell right now)."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        lag = 0
        for tp in committed:
            if tp.error:
                return None
            start, end = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += partition_lag(end, tp.offset, start)
        return lag
    except KafkaException:
        return None
    finally:
        consumer.close()


if __name__ == "__main__":
    configure_logging()
    try:
        names = ensure_topics(get_settings())
    except KafkaUnreachable as error:
        sys.exit(f"error: {error}")
    print(f"Created: {', '.join(names)}" if names else "All topics already exist")
