"""The server's one post producer, controlled from any tab: start, stop, change the rate, see stats."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

from common.contract import Post
from common.settings import Settings
from producer.producer import PostProducer, ProducerStats
from producer.sources import dataset_posts, format_of, read_file_posts, replay, synthetic_posts

logger = logging.getLogger(__name__)

SourceKind = Literal["dataset", "synthetic", "upload"]
SOURCE_LABELS: dict[SourceKind, str] = {
    "dataset": "Shipped data set",
    "synthetic": "Synthetic generator",
    "upload": "Uploaded file",
}


@dataclass(frozen=True)
class Upload:
    name: str  # as the user's browser sent it: show it as text only
    stream: BinaryIO  # read from its start, as a stream
    text_column: str = "text"


@dataclass(frozen=True)
class ProducerState:
    running: bool
    source: str | None  # which kind of source the current or last run reads (one of SOURCE_LABELS)
    file: str | None  # the uploaded file it reads, and what it held: user data, to show as text only
    stats: ProducerStats | None  # of the current or last run


def make_source(
    kind: SourceKind, upload: Upload | None = None, max_rows: int | None = None
) -> tuple[Iterator[Post], str | None]:
    """The posts of a source, and for an upload what it held; a ValueError says why an upload is unusable."""
    if kind == "dataset":
        return dataset_posts(), None
    if kind == "synthetic":
        return synthetic_posts(), None
    if upload is None:
        raise ValueError("choose a CSV, JSON Lines or JSON file first")
    upload.stream.seek(0)  # a second start reads the same upload again
    parsed = read_file_posts(upload.stream, upload.text_column, format_of(upload.name), max_rows)
    summary = f"{upload.name}: {len(parsed.posts):,} posts from {parsed.rows:,} rows"
    if parsed.skipped:
        summary += f"; {len(parsed.skipped):,} skipped, e.g. {parsed.skipped[0]}"
    return replay(parsed.posts), summary


class ProducerHolder:
    """Thread-safe; one per server. The producer runs in its own thread and outlives every tab."""

    def __init__(self, settings: Settings, flush_timeout: float = 10.0):
        self.settings = settings
        self.flush_timeout = flush_timeout
        self._lock = threading.Lock()
        self._producer: PostProducer | None = None
        self._source: str | None = None
        self._file: str | None = None

    def start(self, kind: SourceKind, rate: float, upload: Upload | None = None) -> None:
        source, file = make_source(kind, upload, self.settings.upload_max_rows)
        with self._lock:
            if self._producer is not None and self._producer.running:
                raise RuntimeError("the producer is already running")
            self._producer = PostProducer(
                self.settings, source, rate, stats_interval=60.0, flush_timeout=self.flush_timeout
            )
            self._source, self._file = SOURCE_LABELS[kind], file
            self._producer.start()
        logger.info("Producer started: %s%s at %g posts/s", self._source, f" ({file!r})" if file else "", rate)

    def autostart(self) -> None:
        """Start on the shipped data set at the configured rate when the settings ask for it."""
        if self.settings.producer_autostart:
            self.start("dataset", self.settings.producer_rate)

    def stop(self) -> None:
        with self._lock:
            producer = self._producer
        if producer is not None:
            producer.stop()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            if self._producer is not None and self._producer.running:
                self._producer.set_rate(rate)

    def state(self) -> ProducerState:
        with self._lock:
            producer, source, file = self._producer, self._source, self._file
        if producer is None:
            return ProducerState(False, None, None, None)
        return ProducerState(producer.running, source, file, producer.stats())
