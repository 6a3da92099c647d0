"""Compact, parsed forms of what the dashboard reads from the results and dead-letter topics."""

from __future__ import annotations

import base64
import logging
import sys
from typing import NamedTuple

import orjson

from common.contract import LABELS

logger = logging.getLogger(__name__)

LABEL_INDEX = {label: index for index, label in enumerate(LABELS)}


class ResultRecord(NamedTuple):
    """One sentiment result; ``available_at`` is when it reached the results topic (its message time)."""

    post_id: str
    author: str
    source: str
    text: str
    label: str
    score: float
    produced_at: float
    available_at: float
    model: str = ""  # the model that scored it, and its version (None: the result does not say)
    model_version: str | None = None

    @property
    def latency(self) -> float:
        """End-to-end seconds: post written to Kafka -> its result available to readers."""
        return self.available_at - self.produced_at

    @property
    def polarity(self) -> float:
        """The score signed by the label: +confidence positive, -confidence negative, 0 neutral."""
        if self.label == "POSITIVE":
            return self.score
        return -self.score if self.label == "NEGATIVE" else 0.0


class DeadLetterRecord(NamedTuple):
    reason: str
    detail: str
    preview: str
    post_id: str | None  # when the rejected payload was a JSON object with an id
    source_topic: str
    partition: int
    offset: int
    failed_at: float

    @property
    def origin(self) -> str:
        """The rejected message's place in Kafka: one dead letter per message, however often it was rejected."""
        return f"{self.source_topic}[{self.partition}]@{self.offset}"


def parse_result(value: bytes | None, available_at: float) -> ResultRecord | None:
    """A results-topic message value as a record; None (logged) for anything malformed."""
    try:
        document = orjson.loads(value or b"")
        label = document["label"]
        if label not in LABEL_INDEX:
            raise ValueError(f"unknown label {label!r}")
        version = document.get("model_version")
        return ResultRecord(
            str(document["post_id"]),
            str(document["author"]),
            str(document["source"]),
            str(document["text"]),
            label,
            float(document["score"]),
            float(document["produced_at"]),
            available_at,
            # The same few names on every record of the ring: interned, each is held once.
            sys.intern(str(document.get("model") or "")),
            sys.intern(str(version)) if version is not None else None,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        logger.warning("Ignoring a malformed result message: %r", exc)
        return None


def _payload_post_id(payload_base64: str) -> str | None:
    try:
        document = orjson.loads(base64.b64decode(payload_base64))
    except (orjson.JSONDecodeError, ValueError):
        return None
    post_id = document.get("id") if isinstance(document, dict) else None
    return post_id if isinstance(post_id, str) else None


def parse_dead_letter(value: bytes | None) -> DeadLetterRecord | None:
    try:
        document = orjson.loads(value or b"")
        return DeadLetterRecord(
            str(document["reason"]),
            str(document["detail"]),
            document.get("payload_preview") or "(not UTF-8)",
            _payload_post_id(document.get("payload_base64") or ""),
            str(document["source_topic"]),
            int(document["partition"]),
            int(document["offset"]),
            float(document["failed_at"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        logger.warning("Ignoring a malformed dead letter: %r", exc)
        return None
