"""The results feed: one background consumer of the results and dead-letter topics per server.

Its thread never touches Streamlit. It rewinds ``history`` seconds at start (offsets_for_times),
then follows the topics, keeping only bounded structures: a ring of recent results, per-second
aggregates over the history horizon, a dedup memory of post ids, and recent dead letters. Pages
read consistent snapshots, taken under one lock in a few milliseconds. An unexpected error restarts
the consumer (see ``dashboard.background``), which resumes where the last one stopped.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from common.settings import Settings
from dashboard.background import BackgroundThread, ThreadHealth
from dashboard.buckets import (
    BucketSeries,
    ModelKey,
    SecondBuckets,
    count_models,
    series_from_records,
    series_from_rows,
)
from dashboard.dedup import RecentIds
from dashboard.records import DeadLetterRecord, ResultRecord, parse_dead_letter, parse_result

logger = logging.getLogger(__name__)

ADHOC_SOURCE = "adhoc"


@dataclass(frozen=True)
class FeedStatus:
    connected: bool
    error: str | None
    results: int  # distinct results ingested since the server started
    duplicates: int  # repeated results ignored
    dead_letters: int  # distinct dead letters seen since the rewind point
    last_result_at: float | None  # message time of the newest result
    thread: ThreadHealth


@dataclass(frozen=True)
class LiveSnapshot:
    series: BucketSeries
    latest: list[ResultRecord]  # newest first
    since: float
    now: float
    author_filtered: bool = False  # the series came from the ring of recent results only
    models: Counter[ModelKey] | None = None  # results per (model, version) in the series; None: not counted


class ResultsFeed:
    def __init__(
        self,
        settings: Settings,
        *,
        history_seconds: float | None = None,
        ring_size: int = 20_000,
        dedup_size: int = 200_000,
        dead_letter_size: int = 500,
        adhoc_size: int = 2_000,
    ):
        self.settings = settings
        self.history_seconds = (
            history_seconds if history_seconds is not None else settings.dashboard_history_minutes * 60
        )
        self._lock = threading.Lock()
        self._ring: deque[ResultRecord] = deque(maxlen=ring_size)
        self._buckets = SecondBuckets(horizon_seconds=int(self.history_seconds) + 60)
        self._seen = RecentIds(dedup_size)
        self._seen_dead_letters = RecentIds(dedup_size)
        self._dead_letters: deque[DeadLetterRecord] = deque(maxlen=dead_letter_size)
        self._adhoc_size = adhoc_size
        self._adhoc: OrderedDict[str, ResultRecord | DeadLetterRecord] = OrderedDict()
        self._results = self._duplicates = self._dead_letter_count = 0
        self._last_result_at: float | None = None
        self._error: str | None = "connecting"
        # Where each partition's next message is: a restarted consumer resumes there instead of rewinding again.
        self._positions: dict[tuple[str, int], int] = {}
        self._thread = BackgroundThread("results-feed", self._run)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ResultsFeed:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._thread.stop(timeout)

    # --- ingestion (the feed's thread; public for tests and benchmarks) ------------------------

    def ingest_results(self, messages: Iterable[tuple[bytes | None, float]]) -> None:
        """Results as (message value, message time in epoch seconds)."""
        records = [record for value, at in messages if (record := parse_result(value, at)) is not None]
        with self._lock:
            for record in records:
                if not self._seen.add(record.post_id):
                    self._duplicates += 1
                    continue
                self._results += 1
                self._ring.append(record)
                self._buckets.add(record)
                if record.source == ADHOC_SOURCE:
                    self._remember_adhoc(record.post_id, record)
            if records:
                self._last_result_at = max(self._last_result_at or 0.0, records[-1].available_at)
            self._buckets.prune(time.time())

    def ingest_dead_letters(self, values: Iterable[bytes | None]) -> None:
        letters = [letter for value in values if (letter := parse_dead_letter(value)) is not None]
        with self._lock:
            for letter in letters:
                if not self._seen_dead_letters.add(letter.origin):  # at-least-once, or read again after a restart
                    continue
                self._dead_letter_count += 1
                self._dead_letters.append(letter)
                if letter.post_id is not None:
                    self._remember_adhoc(letter.post_id, letter)

    def _remember_adhoc(self, post_id: str, outcome: ResultRecord | DeadLetterRecord) -> None:
        self._adhoc[post_id] = outcome
        if len(self._adhoc) > self._adhoc_size:
            self._adhoc.popitem(last=False)

    # --- snapshots (any thread) ----------------------------------------------------------------

    def status(self) -> FeedStatus:
        with self._lock:
            return FeedStatus(
                connected=self._error is None,
                error=self._error,
                results=self._results,
                duplicates=self._duplicates,
                dead_letters=self._dead_letter_count,
                last_result_at=self._last_result_at,
                thread=self._thread.health(),
            )

    def snapshot(
        self,
        window_seconds: float,
        sources: Collection[str] | None = None,
        authors: Collection[str] | None = None,
        latest: int = 200,
    ) -> LiveSnapshot:
        """The last ``window_seconds`` of results, for the chosen sources and authors (None = all)."""
        now = time.time()
        since = now - window_seconds
        source_set = set(sources) if sources else None
        author_set = set(authors) if authors else None
        with self._lock:
            rows = None if author_set else self._buckets.copy_rows(since, source_set)
            models = None if author_set else self._buckets.count_models(since, source_set)
            ring = list(self._ring)
        matching = [
            record
            for record in ring
            if record.available_at >= since
            and (source_set is None or record.source in source_set)
            and (author_set is None or record.author in author_set)
        ]
        series = series_from_records(matching, since) if rows is None else series_from_rows(rows)
        return LiveSnapshot(
            series,
            matching[: -latest - 1 : -1],
            since,
            now,
            author_filtered=author_set is not None,
            models=count_models(matching) if models is None else models,
        )

    def choices(self, recent: int = 2000) -> tuple[list[str], list[str]]:
        """Filter choices: every source seen, and the authors of the ``recent`` newest results."""
        with self._lock:
            sources = self._buckets.sources
            authors = {record.author for record in itertools.islice(reversed(self._ring), recent)}
        return sources, sorted(authors)

    def outcome(self, post_id: str) -> ResultRecord | DeadLetterRecord | None:
        """The result (or dead letter) of an ad-hoc post, once the feed has seen it."""
        with self._lock:
            return self._adhoc.get(post_id)

    def recent_dead_letters(self) -> list[DeadLetterRecord]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._dead_letters))

    # --- the consumer thread -----------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        consumer = Consumer(
            {
                **self.settings.kafka_client_config(),
                "group.id": f"sentistream-dashboard-{uuid.uuid4().hex[:8]}",  # never commits: assign() only
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
                "client.id": "sentistream-dashboard",
                "error_cb": self._on_error,
            }
        )
        try:
            while not stop.is_set() and not self._assign(consumer):
                stop.wait(2.0)
            next_check = time.monotonic()
            while not stop.is_set():
                messages = consumer.consume(num_messages=2000, timeout=0.5)
                self._dispatch(messages)
                if self._error is not None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + 3.0
                    self._check_connection(consumer)
                if self._error is None:
                    self._thread.succeeded()
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> bool:
        """Assign every partition of both topics: where the feed left off, else at the start of the history window."""
        start_ms = int((time.time() - self.history_seconds) * 1000)
        try:
            wanted = []
            for topic in (self.settings.topic_results, self.settings.topic_dead_letters):
                metadata = consumer.list_topics(topic, timeout=5.0).topics[topic]
                if metadata.error is not None:
                    raise KafkaException(metadata.error)
                wanted += [TopicPartition(topic, partition, start_ms) for partition in metadata.partitions]
            with self._lock:
                known = dict(self._positions)
            new = [tp for tp in wanted if (tp.topic, tp.partition) not in known]
            offsets = consumer.offsets_for_times(new, timeout=10.0) if new else []
        except KafkaException as exc:
            self._set_error(f"cannot read the topics yet: {exc.args[0] if exc.args else exc}")
            return False
        # -1: nothing that recent, start at the end.
        starts = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END) for tp in offsets]
        resumed = [
            TopicPartition(tp.topic, tp.partition, known[(tp.topic, tp.partition)])
            for tp in wanted
            if (tp.topic, tp.partition) in known
        ]
        consumer.assign(starts + resumed)
        self._set_error(None)
        logger.info(
            "Results feed assigned %d partitions (%d rewound %.0f s, %d resumed)",
            len(wanted),
            len(starts),
            self.history_seconds,
            len(resumed),
        )
        return True

    def _dispatch(self, messages: list[Message]) -> None:
        results: list[tuple[bytes | None, float]] = []
        letters: list[bytes | None] = []
        positions: dict[str, dict[tuple[str, int], int]] = {
            self.settings.topic_results: {},
            self.settings.topic_dead_letters: {},
        }
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self._set_error(error.str())
                continue
            positions[message.topic()][(message.topic(), message.partition())] = message.offset() + 1
            if message.topic() == self.settings.topic_results:
                _, stamp = message.timestamp()
                results.append((message.value(), stamp / 1000 if stamp > 0 else time.time()))
            else:
                letters.append(message.value())
        # Each topic's positions right after its messages are counted: a restart never skips a message, and
        # reads again at most the dead letters of one batch (remembered, so counted once).
        if results:
            self.ingest_results(results)
        self._remember_positions(positions[self.settings.topic_results])
        if letters:
            self.ingest_dead_letters(letters)
        self._remember_positions(positions[self.settings.topic_dead_letters])
        if messages:
            self._set_error(None)

    def _remember_positions(self, positions: dict[tuple[str, int], int]) -> None:
        with self._lock:
            self._positions.update(positions)

    def _check_connection(self, consumer: Consumer) -> None:
        try:
            consumer.list_topics(self.settings.topic_results, timeout=2.0)
        except KafkaException:
            return
        self._set_error(None)

    def _on_error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE) or error.fatal():
            self._set_error(error.str())
        logger.debug("Results feed client error: %s", error.str())

    def _set_error(self, error: str | None) -> None:
        with self._lock:
            self._error = error
