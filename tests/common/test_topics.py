"""Topic provisioning against the session's real single-node broker."""

from __future__ import annotations

import pytest

from common.settings import Settings
from common.topics import KafkaUnreachable, ensure_topics, partition_lag, with_own_topics
from tests.conftest import topic_layout


def test_provisioning_creates_the_project_topics_once(settings: Settings) -> None:
    # The ``settings`` fixture provisioned them already: a re-run creates nothing and changes nothing.
    before = topic_layout(settings)
    assert ensure_topics(settings) == []
    assert topic_layout(settings) == before
    assert before[settings.topic_posts][0] == settings.posts_partitions == 6
    assert before[settings.topic_results][0] == settings.results_partitions
    # One broker: replication factor 1, and no min ISR above it (that would refuse every acks=all write).
    assert {replicas for _, replicas, _ in before.values()} == {1}
    assert {min_isr for _, _, min_isr in before.values()} == {"1"}


def test_with_own_topics_gives_a_run_names_of_its_own(settings: Settings) -> None:
    other = with_own_topics(settings)
    own = [
        other.topic_posts,
        other.topic_results,
        other.topic_dead_letters,
        other.topic_stats,
        other.topic_pipeline_status,
        other.topic_pipeline_control,
        other.topic_source_status,
        other.consumer_group,
    ]
    shared = [
        settings.topic_posts,
        settings.topic_results,
        settings.topic_dead_letters,
        settings.topic_stats,
        settings.topic_pipeline_status,
        settings.topic_pipeline_control,
        settings.topic_source_status,
        settings.consumer_group,
    ]
    assert not set(own) & set(shared)
    assert all(mine.startswith(theirs) for mine, theirs in zip(own, shared, strict=True))
    assert set(topic_layout(other)) == set(own[:-1])  # created, with the same layout
    assert other.bootstrap_servers == settings.bootstrap_servers and other.state_dir == settings.state_dir


def test_unreachable_kafka_is_a_clear_error() -> None:
    nowhere = Settings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(KafkaUnreachable, match=r"127\.0\.0\.1:1 did not answer within 2 s.*make kafka-start"):
        ensure_topics(nowhere, timeout=2)


@pytest.mark.parametrize(
    ("end", "committed", "start", "lag"),
    [
        (10, 7, 0, 3),  # end offset - committed offset
        (10, 10, 0, 0),  # caught up
        (10, None, 0, 10),  # never committed: everything retained waits
        (10, None, 4, 6),  # ... counted from the first retained offset, not from 0
        (10, -1001, 4, 6),  # librdkafka's OFFSET_INVALID is "never committed" too
        (10, 2, 4, 6),  # retention deleted past the committed offset: the deleted posts wait for no one
        (10, 12, 0, 0),  # committed past a truncated end: nothing waits, never a negative lag
        (5, None, 5, 0),  # an empty partition
    ],
)
def test_partition_lag_is_the_end_offset_minus_the_committed_or_first_retained_one(
    end: int, committed: int | None, start: int, lag: int
) -> None:
    assert partition_lag(end, committed, start) == lag
