"""One real three-node Kafka cluster (KRaft, replication factor 3, min ISR 2) for every fault test.

Started once per session with the project's launcher, on its own ports (brokers 19500-19502,
controllers 19600-19602), and stopped at the end. A test may kill nodes; the ``three_nodes``
fixture brings every node back and waits until every partition is fully replicated again before
the next test starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from common.settings import Settings
from kafka_local.__main__ import DEFAULT_LIBS
from kafka_local.cluster import ClusterSpec, LocalCluster
from tests.conftest import fresh_settings, topic_layout

FAULTS_KAFKA_PORT = int(os.environ.get("SENTISTREAM_TEST_FAULTS_KAFKA_PORT", "19500"))
NODES = 3

# Lines for the end of the run: what the fault tests measured (duplicates above all).
MEASUREMENTS: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("fault tests: measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


@dataclass
class ThreeNodes:
    cluster: LocalCluster
    spec: ClusterSpec

    @property
    def bootstrap_servers(self) -> str:
        return self.spec.bootstrap_servers

    def kill(self, *node_ids: int) -> None:
        """SIGKILL: the node gets no chance to shut down cleanly, as in a crash or power loss."""
        assert self.cluster.stop(only=list(node_ids), kill=True) == list(node_ids)

    def start(self, *node_ids: int, timeout: float = 120.0) -> None:
        self.cluster.start(nodes=NODES, base_port=FAULTS_KAFKA_PORT, timeout=timeout, only=list(node_ids) or None)

    def heal(self, timeout: float = 180.0) -> None:
        """Every node running and serving, and every partition's ISR complete (a later kill of one node must
        leave min ISR 2 for every partition, else producers with acks=all would rightly stall)."""
        self.start(timeout=timeout)
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout
        while True:
            try:
                metadata = admin.list_topics(timeout=10)
                short = [
                    f"{topic.topic}[{p.id}] isr={p.isrs} replicas={p.replicas}"
                    for topic in metadata.topics.values()
                    for p in topic.partitions.values()
                    if p.leader < 0 or len(p.isrs) < len(p.replicas)
                ]
                if len(metadata.brokers) == NODES and not short:
                    return
            except Exception as exc:
                short = [repr(exc)]
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not fully replicated after {timeout:.0f} s: {short[:5]}")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def three_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeNodes]:
    cluster = LocalCluster(tmp_path_factory.mktemp("kafka-3-nodes"), DEFAULT_LIBS)
    spec = cluster.start(nodes=NODES, base_port=FAULTS_KAFKA_PORT, timeout=180)
    try:
        yield ThreeNodes(cluster, spec)
    finally:
        cluster.stop()


@pytest.fixture
def three_nodes(three_node_cluster: ThreeNodes) -> Iterator[ThreeNodes]:
    """The session's cluster, healthy at the start of the test and made healthy again after it."""
    three_node_cluster.heal()
    yield three_node_cluster
    three_node_cluster.heal()


@pytest.fixture
def fault_settings(three_nodes: ThreeNodes, tmp_path: Path, tiny_model_path: Path) -> Settings:
    """Fresh topics (replication factor 3, min ISR 2) and group on the cluster; the tiny model, small batches.

    Two classifier workers share the machine's two cores, so each runs one torch thread.
    """
    settings = fresh_settings(
        three_nodes.bootstrap_servers,
        tmp_path / "state",
        model=str(tiny_model_path),
        batch_size=16,
        batch_max_wait_ms=50,
        max_text_chars=280,
        torch_threads=1,
    )
    # Provisioning on three nodes: every topic fully replicated, and a write still accepted with one node down.
    assert {(replicas, min_isr) for _, replicas, min_isr in topic_layout(settings).values()} == {(NODES, "2")}
    return settings
