"""The server's one post producer, controlled from any tab: start, stop, change the rate, see stats."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from common.contract import Post
from common.settings import Settings
from producer.producer import PostProducer, ProducerStats
from producer.sources import dataset_posts, file_posts, synthetic_posts

logger = logging.getLogger(__name__)

SourceKind = Literal["dataset", "synthetic", "upload"]
SOURCE_LABELS: dict[SourceKind, str] = {
    "dataset": "Shipped data set",
    "synthetic": "Synthetic generator",
    "upload": "Uploaded CSV / JSONL file",
}


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    text_column: str = "text"


@dataclass(frozen=True)
class ProducerState:
    running: bool
    source: str | None  # what the current or last run reads
    stats: ProducerStats | None  # of the current or last run


def make_source(kind: SourceKind, upload: Upload | None = None) -> Iterator[Post]:
    """The posts of a source; raises ValueError with a readable message for an unusable upload."""
    if kind == "dataset":
        return dataset_posts()
    if kind == "synthetic":
        return synthetic_posts()
    if upload is None:
        raise ValueError("choose a CSV or JSONL file first")
    file_format = "csv" if PurePath(upload.name).suffix.lower() == ".csv" else "jsonl"
    try:
        return file_posts(io.BytesIO(upload.data), text_column=upload.text_column, file_format=file_format)
    except ValueError:
        raise
    except Exception as exc:  # pandas' parser errors are many types: all mean "not a readable file"
        raise ValueError(f"cannot read {upload.name} as {file_format.upper()}: {exc}") from None


class ProducerHolder:
    """Thread-safe; one per server. The producer runs in its own thread and outlives every tab."""

    def __init__(self, settings: Settings, flush_timeout: float = 10.0):
        self.settings = settings
        self.flush_timeout = flush_timeout
        self._lock = threading.Lock()
        self._producer: PostProducer | None = None
        self._source: str | None = None

    def start(self, kind: SourceKind, rate: float, upload: Upload | None = None) -> None:
        source = make_source(kind, upload)
        with self._lock:
            if self._producer is not None and self._producer.running:
                raise RuntimeError("the producer is already running")
            self._producer = PostProducer(
                self.settings, source, rate, stats_interval=60.0, flush_timeout=self.flush_timeout
            )
            self._source = f"{SOURCE_LABELS[kind]}: {upload.name}" if upload is not None and kind == "upload" else SOURCE_LABELS[kind]
            self._producer.start()
        logger.info("Producer started: %s at %g posts/s", self._source, rate)

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
            producer, source = self._producer, self._source
        if producer is None:
            return ProducerState(False, None, None)
        return ProducerState(producer.running, source, producer.stats())
