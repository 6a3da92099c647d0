"""Session-wide fixtures: one real local Kafka broker for the whole run, fresh topics per test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource

from common.settings import Settings
from common.topics import admin_client, topic_specs, with_own_topics
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
    return with_own_topics(Settings(bootstrap_servers=bootstrap_servers, state_dir=state_dir, **overrides))


def topic_layout(settings: Settings, timeout: float = 15.0) -> dict[str, tuple[int, int, str]]:
    """Per project topic: partitions, replicas of partition 0, min.insync.replicas.

    Retried for a while: the broker asked may not yet know a topic another broker just created.
    """
    admin = admin_client(settings)
    names = [spec.name for spec in topic_specs(settings)]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = admin.list_topics(timeout=10)
            configs = {res.name: future.result(timeout=10) for res, future in admin.describe_configs(resources).items()}
            return {
                name: (
                    len(metadata.topics[name].partitions),
                    len(metadata.topics[name].partitions[0].replicas),
                    configs[name]["min.insync.replicas"].value,
                )
                for name in names
            }
        except (KafkaException, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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
