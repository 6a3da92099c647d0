"""What the fault tests share: exact accounting of posts in and results out, lag, logged child processes."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from common.contract import DeadLetter, Post
from common.settings import Settings
from common.topics import group_lag
from pipeline.application import STATS_GROUP_SUFFIX
from producer.producer import PostProducer
from producer.sources import synthetic_posts
from tests.topic_reader import read_all
from tests.waiting import wait_for


def open_transactions(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """Partitions of ``topic`` whose last stable offset trails their end: an open transaction hides what follows
    it from every read_committed reader (the dashboard, the statistics), committed or not. Partition -> (LSO, end)."""
    admin = AdminClient(settings.kafka_client_config())
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}

    def ends(isolation: IsolationLevel) -> dict[int, int]:
        futures = admin.list_offsets(request, isolation_level=isolation, request_timeout=10)
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    stable, end = ends(IsolationLevel.READ_COMMITTED), ends(IsolationLevel.READ_UNCOMMITTED)
    return {p: (stable[p], end[p]) for p in partitions if stable[p] < end[p]}


def hidden_output(settings: Settings, timeout: float = 10.0) -> dict[str, dict[int, tuple[int, int]]]:
    """Open transactions on the output topics, once none is left or after ``timeout`` seconds: a commit's markers
    reach each partition's leader on their own, possibly after the group's offsets already show the commit. A
    transaction left open (issue 9) stays open for ``transaction.timeout.ms``, far longer than ``timeout``."""
    topics = (settings.topic_results, settings.topic_dead_letters)

    def hidden() -> dict[str, dict[int, tuple[int, int]]]:
        return {topic: open_transactions(settings, topic) for topic in topics}

    def none_open() -> dict[str, dict[int, tuple[int, int]]] | None:
        current = hidden()
        return None if any(current.values()) else current

    try:
        return wait_for(none_open, timeout, "the commit markers on the output topics")
    except AssertionError:
        return hidden()


def wait_until_caught_up(settings: Settings, group: str, topic: str, timeout: float) -> float:
    """Wait until ``group`` has committed every message of ``topic``; returns the seconds it took."""
    started = time.monotonic()
    wait_for(lambda: group_lag(settings, group, topic) == 0, timeout, f"group {group} to commit all of {topic}", 1.0)
    return time.monotonic() - started


def wait_until_statistics_caught_up(settings: Settings) -> None:
    """The statistics group has committed every result, and every record it regrouped by source (Quix's
    ``repartition__<group>--...`` topic), so every window those closed has been written."""
    group = settings.consumer_group + STATS_GROUP_SUFFIX
    wait_until_caught_up(settings, group, settings.topic_results, timeout=180)
    topics = AdminClient(settings.kafka_client_config()).list_topics(timeout=15).topics
    regrouped = [topic for topic in topics if topic.startswith(f"repartition__{group}--")]
    assert regrouped, f"no repartition topic of {group}"
    for topic in regrouped:
        wait_until_caught_up(settings, group, topic, timeout=60)


# --- accounting -----------------------------------------------------------------------------------


@dataclass
class Accounting:
    """Post ids: in the raw topic, in results, in dead letters (each with its count)."""

    produced: Counter[str]
    results: Counter[str]
    dead_letters: Counter[str]

    @property
    def lost(self) -> set[str]:
        return set(self.produced) - set(self.results) - set(self.dead_letters)

    @property
    def unexpected(self) -> set[str]:
        return (set(self.results) | set(self.dead_letters)) - set(self.produced)

    @property
    def in_both(self) -> set[str]:
        return set(self.results) & set(self.dead_letters)

    @property
    def duplicates(self) -> int:
        """Outputs beyond one per post: repeated results, repeated dead letters, a post in both."""
        extra_results = sum(self.results.values()) - len(self.results)
        extra_letters = sum(self.dead_letters.values()) - len(self.dead_letters)
        return extra_results + extra_letters + len(self.in_both)

    @property
    def produced_twice(self) -> int:
        return sum(self.produced.values()) - len(self.produced)

    def summary(self) -> str:
        return (
            f"produced={sum(self.produced.values())} (distinct {len(self.produced)}) "
            f"results={sum(self.results.values())} (distinct {len(self.results)}) "
            f"dead_letters={sum(self.dead_letters.values())} (distinct {len(self.dead_letters)}) "
            f"lost={len(self.lost)} duplicates={self.duplicates} raw_written_twice={self.produced_twice}"
        )

    def assert_every_post_accounted_for(self, raw_duplicates_allowed: bool = False) -> None:
        assert self.produced, "nothing was produced"
        if not raw_duplicates_allowed:
            assert self.produced_twice == 0, (
                f"{self.produced_twice} posts are twice in the raw topic (the producer is idempotent)"
            )
        assert not self.lost, (
            f"{len(self.lost)} posts have neither a result nor a dead letter, e.g. {sorted(self.lost)[:5]}"
        )
        assert not self.unexpected, f"outputs for posts never produced: {sorted(self.unexpected)[:5]}"
        assert set(self.results) | set(self.dead_letters) == set(self.produced)


def post_id_of(raw: bytes) -> str:
    return json.loads(raw)["id"]


def account(settings: Settings, timeout: float = 120.0) -> Accounting:
    produced = Counter(post_id_of(m.value()) for m in read_all(settings, settings.topic_posts, timeout))
    results = Counter(json.loads(m.value())["post_id"] for m in read_all(settings, settings.topic_results, timeout))
    letters = [
        DeadLetter.model_validate_json(m.value()) for m in read_all(settings, settings.topic_dead_letters, timeout)
    ]
    dead = Counter(post_id_of(base64.b64decode(letter.payload_base64)) for letter in letters)
    return Accounting(produced, results, dead)


def mixed_posts(every: int = 10, max_text_chars: int = 280) -> Iterator[Post]:
    """Synthetic posts, every ``every``-th one too long: the pipeline dead-letters it (``text_too_long``).

    Each post has its own id, so results and dead letters can both be traced back to it.
    """
    for index, post in enumerate(synthetic_posts()):
        if index % every == every - 1:
            # A valid Post (the length limit is the pipeline's setting), rejected by the pipeline.
            yield post.model_copy(update={"text": post.text + " " + "!" * max_text_chars})
        else:
            yield post


# --- child processes ------------------------------------------------------------------------------


def pipeline_workers(supervisor: subprocess.Popen) -> dict[int, str]:
    """The supervisor's live worker processes: pid -> role (``classify`` or ``stats``).

    Neither a worker that died and is not yet reaped (a zombie) nor a child not yet running the worker is one.
    """
    workers = {}
    for child in psutil.Process(supervisor.pid).children():
        with contextlib.suppress(psutil.Error):
            command = child.cmdline()
            if child.status() != psutil.STATUS_ZOMBIE and "worker" in command:
                workers[child.pid] = command[command.index("worker") + 1]
    return workers


def wait_for_workers(supervisor: subprocess.Popen, count: int, timeout: float = 60.0) -> dict[int, str]:
    """The supervisor's live workers (pid -> role), once there are ``count`` of them."""
    return wait_for(
        lambda: w if len(w := pipeline_workers(supervisor)) == count else None,
        timeout,
        f"the supervisor to run {count} live worker(s)",
    )


# Quix logs librdkafka's failed and lost connections at ERROR: while a node is down or starting, they are expected.
BROKER_CONNECTION_ERRORS = (
    "Connection refused",
    "Connection reset by peer",
    "Disconnected",
    'code="-195"',
    'code="-187"',
    "_TRANSPORT",
    "_ALL_BROKERS_DOWN",
)


def log_problems(log: Path, expected: tuple[str, ...] = ()) -> list[str]:
    """Lines of a process log that report errors (a clean run has none), but for those with an ``expected`` part."""
    markers = (" ERROR ", " CRITICAL ", "Traceback (most recent call last)")
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if any(m in line for m in markers) and not any(e in line for e in expected)
    ]


def group_coordinator(settings: Settings, group: str) -> int | None:
    """The node id of ``group``'s coordinator, or None if Kafka does not say."""
    admin = AdminClient(settings.kafka_client_config())
    try:
        description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        return description.coordinator.id
    except Exception:
        return None


def transaction_coordinator(settings: Settings, transactional_id: str) -> int:
    """The node leading the ``__transaction_state`` partition that holds ``transactional_id``: Kafka's own
    mapping, the absolute value of the id's Java ``String.hashCode()`` modulo that topic's partitions."""
    units = transactional_id.encode("utf-16-be")  # Java hashes UTF-16 code units
    code = 0
    for unit in struct.unpack(f">{len(units) // 2}H", units):
        code = (31 * code + unit) & 0xFFFFFFFF
    signed = code - (1 << 32) if code >= 1 << 31 else code
    metadata = AdminClient(settings.kafka_client_config()).list_topics("__transaction_state", timeout=10)
    partitions = metadata.topics["__transaction_state"].partitions
    return partitions[(0 if signed == -(1 << 31) else abs(signed)) % len(partitions)].leader


def wait_until_ready(settings: Settings, timeout: float = 180.0) -> None:
    """One post through the pipeline: a worker has loaded the model and joined the group."""
    canary = Post(author="canary", source="test", text="Ready when you are")
    producer = PostProducer(settings, iter([canary]), rate=None, stats_interval=None)
    assert producer.run().delivered == 1
    read_all(settings, settings.topic_results, timeout, at_least=1)  # fails if the pipeline never started
