"""What the classifier worker writes, results and dead letters, each sized to fit before it is produced.

Both go through the application's own producer, so under exactly-once they belong to the checkpoint's
transaction together with the consumed offsets. A message the broker would refuse for its size would
fail the checkpoint, and the replay would fail again: so each is measured first against the smaller of
the producer's ``message.max.bytes`` and the topic's ``max.message.bytes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource

from common.contract import Outgoing, RejectReason, SentimentResult, encode_dead_letter, encode_result
from common.settings import Settings

logger = logging.getLogger(__name__)

Produce = Callable[[str, bytes | None, bytes], None]


@dataclass(frozen=True)
class Source:
    """Where a message came from, and what it was: all a dead letter needs."""

    raw: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    # The author of its post once validation read it: what the message's dead letter is keyed by when the
    # message had no key (its result would have been keyed by it too).
    author: str | None = None

    @property
    def message_id(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def topic_message_limits(settings: Settings, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Per topic, the largest message the worker may write: min(message_max_bytes, the topic's max.message.bytes)."""
    limits = dict.fromkeys(topics, settings.message_max_bytes)
    admin = AdminClient(settings.kafka_client_config())
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
    try:
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            entry = future.result(timeout=timeout).get("max.message.bytes")
            if entry is not None and entry.value is not None:
                limits[resource.name] = min(limits[resource.name], int(entry.value))
    except KafkaException as exc:
        # The producer's own limit still holds; a topic set lower than it is rare and is logged.
        logger.warning(
            "Could not read the topics' max.message.bytes (%s); using %d bytes", exc, settings.message_max_bytes
        )
    return limits


class Outputs:
    """Writes results and dead letters through ``produce(topic, key, value)``."""

    def __init__(self, produce: Produce, results_topic: str, dead_letters_topic: str, limits: dict[str, int]):
        self._produce = produce
        self._results_topic = results_topic
        self._dead_letters_topic = dead_letters_topic
        self._results_limit = limits[results_topic]
        self._dead_letters_limit = limits[dead_letters_topic]

    @classmethod
    def for_settings(cls, settings: Settings, produce: Produce, limits: dict[str, int]) -> Outputs:
        return cls(produce, settings.topic_results, settings.topic_dead_letters, limits)

    def encode_result(self, result: SentimentResult) -> Outgoing:
        """Raises ``ResultTooLarge`` when the result would not fit."""
        return encode_result(result, self._results_limit)

    def result(self, outgoing: Outgoing) -> None:
        self._produce(self._results_topic, outgoing.key, outgoing.value)

    def dead_letter(self, reason: RejectReason, detail: str, source: Source) -> None:
        outgoing = encode_dead_letter(
            reason,
            detail,
            source.raw,
            source.key,
            source.topic,
            source.partition,
            source.offset,
            self._dead_letters_limit,
            source.author,
        )
        self._produce(self._dead_letters_topic, outgoing.key, outgoing.value)
        if reason in UNEXPECTED_REASONS:
            # Bad input is routine (counted on the dashboard); these mean the model or a worker failed on a message.
            logger.warning(
                "Dead-lettered %s[%d]@%d: %s: %s", source.topic, source.partition, source.offset, reason.value, detail
            )


UNEXPECTED_REASONS = frozenset({RejectReason.MODEL_ERROR, RejectReason.POISON_MESSAGE, RejectReason.RESULT_TOO_LARGE})
