"""A live source run in a thread of the test, without Kafka: its producer and state store are in memory.

The Kafka tests run the real thing (``python -m producer --source ...``); these let the unit tests drive the
whole source loop (sessions, back-off, de-duplication, checkpoints, status) against a local fake network.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from common.contract import Post, SourceState, SourceStatus
from producer.live.base import LiveSource
from tests.waiting import wait_for

STATUS_TOPIC = "sources.status.test"
POSTS_TOPIC = "posts.raw.test"


@dataclass
class Sent:
    topic: str
    key: bytes
    value: bytes


class MemoryProducer:
    """Quix's InternalProducer as far as a source uses it; remembers what was produced and what was flushed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list[Sent] = []
        self.flushed = 0  # how many of ``sent`` a flush has confirmed
        self.undelivered = 0  # what a flush says is still not delivered (Kafka away)

    def produce(self, topic: str, value: bytes, key: bytes, **_options: object) -> None:
        with self.lock:
            self.sent.append(Sent(topic, key, value))

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float | None = None) -> int:
        with self.lock:
            self.flushed = len(self.sent) - self.undelivered
            return self.undelivered


@dataclass
class MemoryStore:
    """A store partition whose transactions write to ``data`` when flushed, like Quix's changelogged MemoryStore."""

    data: dict[str, object] = field(default_factory=dict)

    def begin(self) -> _Transaction:
        return _Transaction(self)


class _Transaction:
    def __init__(self, store: MemoryStore):
        self.store = store
        self.pending: dict[str, object] = {}

    def as_state(self) -> _Transaction:
        return self

    def get(self, key: str, default: object = None) -> object:
        return self.pending.get(key, self.store.data.get(key, default))

    def set(self, key: str, value: object) -> None:
        self.pending[key] = value

    def prepare(self) -> None:
        pass

    def flush(self) -> None:
        self.store.data.update(self.pending)


class Run:
    """What a source sent while it ran."""

    def __init__(self, source: LiveSource, producer: MemoryProducer):
        self.source = source
        self.producer = producer

    def _sent(self, topic: str) -> list[Sent]:
        with self.producer.lock:
            return [sent for sent in self.producer.sent if sent.topic == topic]

    def posts(self) -> list[Post]:
        return [Post.model_validate_json(sent.value) for sent in self._sent(POSTS_TOPIC)]

    def keys(self) -> list[bytes]:
        return [sent.key for sent in self._sent(POSTS_TOPIC)]

    def statuses(self) -> list[SourceStatus]:
        return [SourceStatus.model_validate_json(sent.value) for sent in self._sent(STATUS_TOPIC)]

    def status(self) -> SourceStatus:
        return self.statuses()[-1]

    def wait_for_posts(self, count: int, timeout: float = 30) -> list[Post]:
        return wait_for(lambda: (posts := self.posts()) and len(posts) >= count and posts, timeout, f"{count} posts")

    def wait_for_state(self, state: SourceState, timeout: float = 30) -> SourceStatus:
        return wait_for(
            lambda: next((s for s in reversed(self.statuses()) if s.state == state), None),
            timeout,
            f"status {state.value}",
        )


class _Topic:
    name = POSTS_TOPIC


@contextlib.contextmanager
def running(source: LiveSource, store: MemoryStore | None = None) -> Iterator[Run]:
    """``source`` running in a thread, as Quix runs it in its process (configure, start); stopped on exit, and
    its ending (a flush, the stopped status) awaited."""
    producer = MemoryProducer()
    source.configure(_Topic(), producer, store_partition=store if store is not None else MemoryStore())
    failure: list[BaseException] = []

    def start() -> None:
        try:
            source.start()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=start, name=f"source-{source.name}", daemon=True)
    thread.start()
    run = Run(source, producer)
    try:
        yield run
    finally:
        source.stop()
        thread.join(30)
        assert not thread.is_alive(), "the source did not stop within 30 s"
    assert not failure, f"the source failed: {failure[0]!r}"
