"""Running aggregates of results in per-second, per-source buckets, kept for a bounded horizon.

A bucket is one flat list: label counts, the polarity sum, the confidence histogram, the latency
histogram. Adding a result is a few increments; reading a time range sums buckets with numpy. Beside each
bucket, a count per model (and version) that scored its results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np

from common.contract import LABELS
from dashboard.histogram import CONFIDENCE_BINS, LATENCY_BINS, confidence_bin, latency_bin
from dashboard.records import LABEL_INDEX, ResultRecord

POLARITY = len(LABELS)
CONFIDENCE_START = POLARITY + 1
LATENCY_START = CONFIDENCE_START + CONFIDENCE_BINS
ROW_SIZE = LATENCY_START + LATENCY_BINS
OTHER_SOURCE = "(other)"
OTHER_MODEL = ("(other models)", None)

ModelKey = tuple[str, str | None]  # a model's name and version, as its results say


def model_key(record: ResultRecord) -> ModelKey:
    return record.model, record.model_version


def count_models(records: Iterable[ResultRecord]) -> Counter[ModelKey]:
    return Counter(model_key(record) for record in records)


@dataclass(frozen=True)
class BucketSeries:
    """Buckets of a time range summed over the chosen sources: one row per second that has results."""

    seconds: np.ndarray  # int, ascending
    rows: np.ndarray  # float, shape (len(seconds), ROW_SIZE)

    @property
    def label_counts(self) -> np.ndarray:
        return self.rows[:, :POLARITY]

    @property
    def counts(self) -> np.ndarray:
        return self.label_counts.sum(axis=1)

    @property
    def polarity_sums(self) -> np.ndarray:
        return self.rows[:, POLARITY]

    @property
    def confidence_hist(self) -> np.ndarray:
        return self.rows[:, CONFIDENCE_START:LATENCY_START].sum(axis=0)

    @property
    def latency_hists(self) -> np.ndarray:
        return self.rows[:, LATENCY_START:]

    @property
    def total(self) -> int:
        return int(self.rows[:, :POLARITY].sum())

    @classmethod
    def empty(cls) -> BucketSeries:
        return cls(np.zeros(0, dtype=np.int64), np.zeros((0, ROW_SIZE)))


class SecondBuckets:
    """Not thread-safe: its owner serialises access. ``max_sources`` and ``max_models`` cap memory; more sources
    go to (other), more models to (other models)."""

    def __init__(self, horizon_seconds: int, max_sources: int = 32, max_models: int = 32):
        self.horizon_seconds = horizon_seconds
        self.max_sources = max_sources
        self.max_models = max_models
        self._buckets: dict[int, dict[str, list[float]]] = {}
        self._models: dict[int, dict[str, Counter[ModelKey]]] = {}  # second -> source -> results per model
        self._sources: set[str] = set()
        self._model_keys: set[ModelKey] = set()
        self._cutoff = 0

    @property
    def sources(self) -> list[str]:
        return sorted(self._sources)

    def __len__(self) -> int:
        return sum(len(by_source) for by_source in self._buckets.values())

    def add(self, record: ResultRecord) -> None:
        second = int(record.available_at)
        if second < self._cutoff:
            return
        source = record.source
        if source not in self._sources:
            if len(self._sources) >= self.max_sources:
                source = OTHER_SOURCE
            self._sources.add(source)
        by_source = self._buckets.get(second)
        if by_source is None:
            by_source = self._buckets[second] = {}
        row = by_source.get(source)
        if row is None:
            row = by_source[source] = [0.0] * ROW_SIZE
        row[LABEL_INDEX[record.label]] += 1
        row[POLARITY] += record.polarity
        row[CONFIDENCE_START + confidence_bin(record.score)] += 1
        row[LATENCY_START + latency_bin(record.latency)] += 1
        model = model_key(record)
        if model not in self._model_keys:
            if len(self._model_keys) >= self.max_models:
                model = OTHER_MODEL
            self._model_keys.add(model)
        self._models.setdefault(second, {}).setdefault(source, Counter())[model] += 1

    def prune(self, now: float) -> None:
        """Forget the seconds older than the horizon."""
        self._cutoff = int(now) - self.horizon_seconds
        for second in [second for second in self._buckets if second < self._cutoff]:
            del self._buckets[second]
            self._models.pop(second, None)

    def copy_rows(self, since: float, sources: Collection[str] | None = None) -> list[tuple[int, list[float]]]:
        """(second, row) copies for the seconds from ``since`` and the chosen sources (None = all); quick."""
        start = int(since)
        copied = []
        for second, by_source in self._buckets.items():
            if second >= start:
                for source, row in by_source.items():
                    if sources is None or source in sources:
                        copied.append((second, row.copy()))
        return copied

    def count_models(self, since: float, sources: Collection[str] | None = None) -> Counter[ModelKey]:
        """Results per model (and version) in the seconds from ``since``, for the chosen sources (None = all)."""
        start = int(since)
        total: Counter[ModelKey] = Counter()
        for second, by_source in self._models.items():
            if second >= start:
                for source, counts in by_source.items():
                    if sources is None or source in sources:
                        total.update(counts)
        return total


def series_from_rows(rows: Iterable[tuple[int, list[float]]]) -> BucketSeries:
    """Sum copied rows per second (the sources of one second add up), seconds ascending."""
    rows = list(rows)
    if not rows:
        return BucketSeries.empty()
    seconds = np.fromiter((second for second, _ in rows), dtype=np.int64, count=len(rows))
    matrix = np.array([row for _, row in rows], dtype=float)
    unique, inverse = np.unique(seconds, return_inverse=True)
    summed = np.zeros((len(unique), ROW_SIZE))
    np.add.at(summed, inverse, matrix)
    return BucketSeries(unique, summed)


def series_from_records(records: Iterable[ResultRecord], since: float) -> BucketSeries:
    """The same series built directly from records (e.g. the recent ones of one author)."""
    buckets = SecondBuckets(horizon_seconds=1 << 40, max_sources=1 << 30)
    for record in records:
        buckets.add(record)
    return series_from_rows(buckets.copy_rows(since))
