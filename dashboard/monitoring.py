"""Kafka monitoring queries: brokers, partitions and their replicas, end offsets, group lag and members.

Every query has a timeout and raises ``KafkaException`` when the cluster does not answer; callers
turn that into a status (:func:`kafka_error_text`), never a traceback. Only the cluster monitor's thread
runs them, never a page.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from common.topics import partition_lag

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class Broker:
    id: int
    address: str
    controller: bool


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]
    start_offset: int
    end_offset: int

    @property
    def under_replicated(self) -> bool:
        return len(self.in_sync) < len(self.replicas)

    @property
    def messages(self) -> int:
        return max(self.end_offset - self.start_offset, 0)


@dataclass(frozen=True)
class ClusterView:
    brokers: list[Broker]
    partitions: list[Partition]
    taken_at: float

    def end_offsets(self) -> dict[TopicPartitionKey, int]:
        return {(p.topic, p.partition): p.end_offset for p in self.partitions}

    def topic_messages(self, topic: str) -> int:
        return sum(p.messages for p in self.partitions if p.topic == topic)


@dataclass(frozen=True)
class GroupMember:
    client_id: str
    host: str
    instance_id: str | None  # a static member's group.instance.id (a pipeline worker's slot)
    partitions: tuple[int, ...]  # of the group's topic, assigned to this member


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end_offset: int
    lag: int
    member: GroupMember | None  # the member it is assigned to


@dataclass(frozen=True)
class GroupView:
    group: str
    state: str
    members: tuple[GroupMember, ...]
    lag: list[PartitionLag]

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.lag)


def _offsets(
    admin: AdminClient, partitions: Iterable[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[TopicPartitionKey, int]:
    requests = {partition: spec for partition in partitions}
    if not requests:
        return {}
    futures = admin.list_offsets(requests, request_timeout=timeout)
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


def cluster_view(admin: AdminClient, topics: Iterable[str] | None = None, timeout: float = 5.0) -> ClusterView:
    """Brokers and the partitions of ``topics`` (None = every non-internal topic) with their offsets."""
    metadata = admin.list_topics(timeout=timeout)
    brokers = [
        Broker(broker.id, f"{broker.host}:{broker.port}", broker.id == metadata.controller_id)
        for broker in sorted(metadata.brokers.values(), key=lambda b: b.id)
    ]
    wanted = set(topics) if topics is not None else {name for name in metadata.topics if not name.startswith("__")}
    found = [
        metadata.topics[name]
        for name in sorted(wanted)
        if name in metadata.topics and metadata.topics[name].error is None
    ]
    partitions = [TopicPartition(topic.topic, p) for topic in found for p in sorted(topic.partitions)]
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout)
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout)
    return ClusterView(
        brokers=brokers,
        partitions=[
            Partition(
                topic.topic,
                p.id,
                p.leader,
                tuple(p.replicas),
                tuple(p.isrs),
                starts[(topic.topic, p.id)],
                ends[(topic.topic, p.id)],
            )
            for topic in found
            for p in sorted(topic.partitions.values(), key=lambda p: p.id)
        ],
        taken_at=time.time(),
    )


def group_view(admin: AdminClient, group: str, topic: str, cluster: ClusterView, timeout: float = 5.0) -> GroupView:
    """Members of ``group`` and its lag on ``topic`` per partition (``common.topics.partition_lag``)."""
    description = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result()
    request = [ConsumerGroupTopicPartitions(group)]
    committed_result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group].result()
    committed = {
        (tp.topic, tp.partition): tp.offset for tp in committed_result.topic_partitions or [] if tp.offset >= 0
    }
    members = tuple(
        GroupMember(
            member.client_id,
            member.host,
            member.group_instance_id,
            tuple(sorted(tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic)),
        )
        for member in description.members
    )
    owners = {partition: member for member in members for partition in member.partitions}
    lag = []
    for partition in cluster.partitions:
        if partition.topic != topic:
            continue
        done = committed.get((topic, partition.partition))
        pending = partition_lag(partition.end_offset, done, partition.start_offset)
        lag.append(
            PartitionLag(
                topic, partition.partition, done, partition.end_offset, pending, owners.get(partition.partition)
            )
        )
    return GroupView(group, description.state.name, members, lag)


def kafka_error_text(exc: KafkaException) -> str:
    """librdkafka's own words for what went wrong."""
    error = exc.args[0] if exc.args else None
    return error.str() if hasattr(error, "str") else str(exc)


class ThroughputTracker:
    """Messages/s per partition: the growth of end offsets between two refreshes."""

    def __init__(self) -> None:
        self._previous: tuple[float, dict[TopicPartitionKey, int]] | None = None

    def update(self, end_offsets: dict[TopicPartitionKey, int], at: float) -> dict[TopicPartitionKey, float | None]:
        """Rates since the previous call (None on the first one, or for a new partition)."""
        previous = self._previous
        self._previous = (at, dict(end_offsets))
        if previous is None or at <= previous[0]:
            return {key: None for key in end_offsets}
        elapsed = at - previous[0]
        return {
            key: (max(offset - previous[1][key], 0) / elapsed if key in previous[1] else None)
            for key, offset in end_offsets.items()
        }
