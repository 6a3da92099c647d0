"""Batched inference as a Quix sink.

Quix hands records over one by one; the model wants batches. A sink is the place Quix lets records
accumulate: ``add`` collects valid posts from every assigned partition, and ``flush`` (called by the
checkpoint, before offsets are committed) scores them all in one call and emits one result per post.
The checkpoint fires after ``commit_every`` posts or ``commit_interval`` seconds, which is what bounds
both the batch and the longest a post waits. In that one call the model sorts the batch by length and
runs ``model_batch_size`` posts per forward pass, so each pass pads little: under load a batch is the
backlog already waiting in Kafka, and sorting it costs no extra wait. Offsets are committed only after
the emitted results are delivered, so a crash replays posts instead of losing them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from quixstreams.sinks import BaseSink

from common.contract import Post, SentimentResult

logger = logging.getLogger(__name__)


class Prediction(Protocol):
    label: str
    score: float


class BatchClassifier(Protocol):
    name: str

    def predict(self, texts: Sequence[str], batch_size: int = ...) -> Sequence[Prediction]: ...


class ClassifierSink(BaseSink):
    def __init__(self, classifier: BatchClassifier, emit: Callable[[SentimentResult], None], model_batch_size: int):
        super().__init__()
        self._classifier = classifier
        self._emit = emit
        self._model_batch_size = model_batch_size
        self._posts: list[Post] = []
        self._produced_at: list[float] = []

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int, offset: int) -> None:
        self._posts.append(value)
        self._produced_at.append(timestamp / 1000)

    def flush(self) -> None:
        if not self._posts:
            return
        try:
            self._score(self._posts, self._produced_at)
        finally:
            # Whatever happened, the checkpoint replays these posts from Kafka if it did not commit.
            self._posts.clear()
            self._produced_at.clear()

    def _score(self, posts: list[Post], produced_at: list[float]) -> None:
        predictions = self._classifier.predict([post.text for post in posts], batch_size=self._model_batch_size)
        processed_at = time.time()
        model = self._classifier.name
        for post, produced, prediction in zip(posts, produced_at, predictions, strict=True):
            self._emit(
                SentimentResult(
                    post_id=post.id,
                    author=post.author,
                    source=post.source,
                    text=post.text,
                    label=prediction.label,
                    score=prediction.score,
                    model=model,
                    created_at=post.created_at,
                    produced_at=produced,
                    processed_at=processed_at,
                )
            )

    def on_paused(self) -> None:
        self._posts.clear()
        self._produced_at.clear()
