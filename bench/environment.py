"""Where a benchmark runs: a local Kafka of its own (or the configured cluster) and fresh topics per run."""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
from confluent_kafka import Producer

from common.settings import PROJECT_ROOT, Settings, get_settings
from common.topics import with_own_topics
from kafka_local.__main__ import DEFAULT_LIBS
from kafka_local.cluster import LocalCluster

BENCH_KAFKA_PORT = 19800
BENCH_KAFKA_HOME = PROJECT_ROOT / ".local" / "bench-kafka"


@contextlib.contextmanager
def bench_kafka() -> Iterator[str]:
    """Bootstrap servers of the configured cluster, or of a local one started (and stopped) for the run."""
    settings = get_settings()
    if not settings.uses_local_kafka:
        yield settings.brokers
        return
    cluster = LocalCluster(BENCH_KAFKA_HOME, DEFAULT_LIBS)
    spec = cluster.start(nodes=1, base_port=BENCH_KAFKA_PORT)
    try:
        yield spec.bootstrap_servers
    finally:
        cluster.stop()


def fresh_settings(bootstrap_servers: str, **overrides: object) -> Settings:
    """The configured settings on ``bootstrap_servers``, with topics, group and state of the run's own."""
    base = get_settings().model_copy(
        update={
            "bootstrap_servers": bootstrap_servers,
            "state_dir": PROJECT_ROOT / ".local" / "bench-state" / uuid.uuid4().hex[:8],
            "auto_offset_reset": "earliest",
            **overrides,
        }
    )
    return with_own_topics(base)


def produce_raw(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(
        {
            **settings.kafka_client_config(),
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)


def machine() -> dict[str, object]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def output_dir(path: str | Path) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out
