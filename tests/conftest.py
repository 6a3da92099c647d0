"""Session-wide fixtures: one real local Kafka broker for the whole run, fresh topics per test; the test tiers.

Every test gets exactly one tier, from what it uses (never from what it says about itself):

* ``browser``: the app in headless Chromium (``tests/e2e``);
* ``faults``: the three-node cluster (``three_node_cluster`` in its fixtures);
* ``kafka``: a real broker: the session's (``kafka_cluster``), or one the test starts itself (``launcher_port``,
  or a ``LocalCluster`` it starts in its own code);
* ``unit``: everything else: no broker (the tiny real Flair model is fine). ``make test-fast`` runs these.

A tier marker written on a test that contradicts what it uses is an error, and a ``unit`` test that starts a
broker anyway fails.
"""

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
# For the launcher's own tests, which start brokers themselves from here up (controllers 100 above).
LAUNCHER_PORT = 19300

TIERS = ("unit", "kafka", "faults", "browser")
E2E = Path(__file__).parent / "e2e"


def tier_of(item: pytest.Item) -> str:
    """The tier of ``item`` from what it uses: its directory, its fixtures, the broker its own code starts."""
    if E2E in item.path.parents:
        return "browser"
    fixtures = set(getattr(item, "fixturenames", ()))
    if "three_node_cluster" in fixtures:
        return "faults"
    names = set(item.function.__code__.co_names) if isinstance(item, pytest.Function) else set()
    if {"kafka_cluster", "launcher_port"} & fixtures or {"LocalCluster", "start"} <= names:
        return "kafka"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    contradictions = []
    for item in items:
        tier = tier_of(item)
        claimed = {mark.name for mark in item.iter_markers() if mark.name in TIERS} - {tier}
        if claimed:
            contradictions.append(
                f"{item.nodeid}: marked {', '.join(sorted(claimed))}, but it is {tier} by what it uses"
            )
        item.add_marker(tier)
    if contradictions:
        raise pytest.UsageError("tier markers that contradict what the tests use:\n" + "\n".join(contradictions))


@pytest.fixture(autouse=True)
def unit_tests_start_no_broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``unit`` test that starts a Kafka broker after all fails, instead of slipping into ``make test-fast``."""
    if request.node.get_closest_marker("unit"):

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise AssertionError(
                "a unit test may not start Kafka: give it the kafka_cluster or launcher_port fixture, "
                "or start the LocalCluster in the test function itself, and it is a kafka test"
            )

        monkeypatch.setattr(LocalCluster, "start", refuse)


def require_tool(available: bool, tool: str, install: str) -> None:
    """For a test that drives a system tool: under CI (``CI=true``) a missing one fails the test with what to
    install, so a green run never lacks it; elsewhere the test skips, saying how to enable it."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{tool} is missing: {install} (CI=true: this test must run)", pytrace=False)
    pytest.skip(f"{tool} is missing; to run this test: {install}")


@pytest.fixture
def launcher_port() -> int:
    """The first port for brokers the test starts itself with the launcher; their controllers listen 100 above."""
    return LAUNCHER_PORT


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    cluster = LocalCluster(tmp_path_factory.mktemp("kafka"), DEFAULT_LIBS)
    spec = cluster.start(nodes=1, base_port=TEST_KAFKA_PORT)
    yield spec
    cluster.stop()


def fresh_settings(bootstrap_servers: str, state_dir: Path, **overrides: object) -> Settings:
    """Settings for ``bootstrap_servers`` with topics and a consumer group of their own (created here), and a
    models folder of their own (empty: never the checkout's models)."""
    overrides = {"models_dir": state_dir.parent / "models", **overrides}
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
