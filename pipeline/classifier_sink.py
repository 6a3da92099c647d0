"""Batched inference as a Quix sink, where a failing model call costs one post, not the pipeline.

Quix hands records over one by one; the model wants batches. A sink is the place Quix lets records
accumulate: ``add`` collects valid posts from every assigned partition, and ``flush`` (called by the
checkpoint, before offsets are committed) scores them all in one call and writes one result per post.
The checkpoint fires after ``commit_every`` posts or ``commit_interval`` seconds, which is what bounds
both the batch and the longest a post waits. In that one call the model sorts the batch by length and
runs ``model_batch_size`` posts per forward pass, so each pass pads little.

When the model raises on a batch, or answers with the wrong number of predictions, the batch is split
in halves until the failing posts stand alone; each of those is dead-lettered (``model_error``) and the
rest are scored. Only what no single post can cause (out of memory) is raised, and stops the worker.

Nothing is written until the whole batch is scored, and offsets are committed only after what was
written is delivered (under exactly-once, in the same transaction), so a crash replays posts instead
of losing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from quixstreams.sinks import BaseSink

from common.contract import Outgoing, RejectReason, ResultTooLarge, SentimentResult
from pipeline.definition import Accepted
from pipeline.outputs import Outputs
from pipeline.poison import InFlight

logger = logging.getLogger(__name__)


class Prediction(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...


class BatchClassifier(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str | None: ...

    def predict(self, texts: Sequence[str], batch_size: int = ...) -> Sequence[Prediction]: ...


class HandedOver(RuntimeError):
    """The checkpoint is being committed on a rebalance: its posts are left to their next owner."""


@dataclass(frozen=True)
class Pending:
    accepted: Accepted
    produced_at: float  # the message's Kafka timestamp, seconds


@dataclass(frozen=True)
class Scored:
    pending: Pending
    result: Outgoing


@dataclass(frozen=True)
class Failed:
    pending: Pending
    reason: RejectReason
    detail: str


def is_out_of_memory(error: BaseException) -> bool:
    # torch reports a failed CPU allocation as a RuntimeError; no one post can cause it (texts are bounded).
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and ("can't allocate memory" in str(error) or "out of memory" in str(error))
    )


class ClassifierSink(BaseSink):
    def __init__(
        self, classifier: BatchClassifier, outputs: Outputs, model_batch_size: int, in_flight: InFlight | None = None
    ):
        super().__init__()
        self._in_flight = in_flight
        self._batch_in_flight = False
        self._classifier = classifier
        self._outputs = outputs
        self._model_batch_size = model_batch_size
        self._pending: list[Pending] = []
        self._consumer_thread: int | None = None

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int, offset: int) -> None:
        if self._in_flight is not None and self._batch_in_flight:
            # A new checkpoint: the batch noted before was committed (or its posts will be read again), and a
            # crash from here on is not its doing.
            self._in_flight.clear()
            self._batch_in_flight = False
        self._consumer_thread = threading.get_ident()
        self._pending.append(Pending(value, timestamp / 1000))

    def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        if threading.get_ident() != self._consumer_thread:
            # Quix flushes on a rebalance in a thread of its own and, past a deadline, aborts the checkpoint
            # and moves on while that thread still runs: its late results would land in the next transaction.
            # Not scoring here aborts this checkpoint cleanly; the posts' next owner scores them from Kafka.
            raise HandedOver(f"{len(batch)} posts left unscored for their partitions' next owner")
        if self._in_flight is not None:
            # Should the process die while scoring (a native crash), its supervisor knows which posts it was on.
            self._in_flight.note([p.accepted.source.message_id for p in batch])
            self._batch_in_flight = True
        outcomes = self.score(batch)
        for outcome in outcomes:
            if isinstance(outcome, Scored):
                self._outputs.result(outcome.result)
            else:
                source = outcome.pending.accepted.source
                self._outputs.dead_letter(outcome.reason, outcome.detail, source)

    def on_paused(self) -> None:
        self._pending.clear()

    def score(self, batch: list[Pending]) -> list[Scored | Failed]:
        """One outcome per post, in order: its result, or why it has none."""
        try:
            predictions = self._classifier.predict(
                [p.accepted.post.text for p in batch], batch_size=self._model_batch_size
            )
            if len(predictions) != len(batch):
                raise ValueError(f"the model gave {len(predictions)} predictions for {len(batch)} texts")
            processed_at = time.time()
            results = [
                self._result(pending, prediction, processed_at)
                for pending, prediction in zip(batch, predictions, strict=True)
            ]
        except Exception as error:
            if is_out_of_memory(error):
                raise
            if len(batch) == 1:
                return [Failed(batch[0], RejectReason.MODEL_ERROR, f"{type(error).__name__}: {error}")]
            middle = len(batch) // 2
            logger.warning(
                "The model failed on a batch of %d posts (%s: %s); splitting it to find the posts that cause it",
                len(batch),
                type(error).__name__,
                error,
            )
            return self.score(batch[:middle]) + self.score(batch[middle:])
        return [self._fitted(pending, result) for pending, result in zip(batch, results, strict=True)]

    def _result(self, pending: Pending, prediction: Prediction, processed_at: float) -> SentimentResult:
        post = pending.accepted.post
        # Validated: a label the contract does not know, or a score out of range, is a model error.
        return SentimentResult.model_validate(
            {
                "post_id": post.id,
                "author": post.author,
                "source": post.source,
                "text": post.text,
                "label": prediction.label,
                "score": prediction.score,
                "model": self._classifier.name,
                "model_version": self._classifier.version,
                "created_at": post.created_at,
                "produced_at": pending.produced_at,
                "processed_at": processed_at,
            }
        )

    def _fitted(self, pending: Pending, result: SentimentResult) -> Scored | Failed:
        try:
            return Scored(pending, self._outputs.encode_result(result))
        except ResultTooLarge as error:
            return Failed(pending, RejectReason.RESULT_TOO_LARGE, str(error))
