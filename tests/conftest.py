"""Session-wide fixtures: one real local Kafka broker for the whole run, fresh topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import Settings
from common.topics import ensure_topics
from kafka_local.__main__ import DEFAULT_LIBS
from kafka_local.cluster import ClusterSpec, LocalCluster

# Away from the product's 9092 so a running product and the suite do not meet.
TEST_KAFKA_PORT = int(os.environ.get("SENTISTREAM_TEST_KAFKA_PORT", "19092"))


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    cluster = LocalCluster(tmp_path_factory.mktemp("kafka"), DEFAULT_LIBS)
    spec = cluster.start(nodes=1, base_port=TEST_KAFKA_PORT)
    yield spec
    cluster.stop()


def fresh_settings(bootstrap_servers: str, state_dir: Path, **overrides: object) -> Settings:
    """Settings for ``bootstrap_servers`` with topics and a consumer group of their own (created here)."""
    suffix = uuid.uuid4().hex[:8]
    test_settings = Settings(
        bootstrap_servers=bootstrap_servers,
        topic_posts=f"posts.raw.{suffix}",
        topic_results=f"posts.sentiment.{suffix}",
        topic_dead_letters=f"posts.dead-letters.{suffix}",
        topic_stats=f"sentiment.stats.{suffix}",
        consumer_group=f"sentiment-pipeline-{suffix}",
        state_dir=state_dir,
        **overrides,
    )
    ensure_topics(test_settings)
    return test_settings


@pytest.fixture
def settings(kafka_cluster: ClusterSpec, tmp_path: Path) -> Settings:
    """Settings pointing at the test broker, with this test's own topics and consumer group."""
    return fresh_settings(kafka_cluster.bootstrap_servers, tmp_path / "state")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, quickly trained 3-class Flair model (the build's ``tiny`` profile), built once per session."""
    from sentiment_model.build import build_model

    path = tmp_path_factory.mktemp("sentiment-model") / "tiny.pt"
    build_model(path, profile="tiny")
    return path
