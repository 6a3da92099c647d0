"""The tests' one way to see what landed on a topic: everything from its start, read to its end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Hashable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from common.settings import Settings


def read_all(
    settings: Settings,
    topic: str,
    timeout: float = 60.0,
    isolation: str = "read_committed",
    at_least: int = 0,
    distinct_by: Callable[[Message], Hashable] | None = None,
) -> list[Message]:
    """Every message of ``topic`` from the start of each partition to its end, once at least ``at_least`` are there.

    Reads with ``isolation.level=read_committed`` (what the app and any downstream reader see), so aborted
    transactions never count; the end of a partition is its last stable offset. With ``read_uncommitted``,
    aborted messages are read too. ``at_least`` waits for output still on its way (a pipeline's results):
    reading goes on past the ends until that many arrived. With ``distinct_by``, ``at_least`` counts distinct
    values of it, not messages: at-least-once output repeats what a killed worker had not committed, and those
    repeats must not pass for the output still missing. Fails after ``timeout`` seconds, saying what is missing.
    """
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        messages: list[Message] = []
        identity = distinct_by or (lambda message: (message.partition(), message.offset()))  # each its own
        distinct: set[Hashable] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions) or len(distinct) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: {len(distinct)} distinct of {len(messages)} messages (waiting for at least "
                    f"{at_least}), partitions "
                    f"{sorted(set(partitions) - at_end)} not read to their end, after {timeout:.0f} s"
                )
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is None:
                    messages.append(message)
                    distinct.add(identity(message))
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                elif not error.retriable():
                    raise KafkaException(error)
        return messages
    finally:
        consumer.close()
