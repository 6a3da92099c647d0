"""Reading what landed on a topic from its start: for tests, benchmarks and checks."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

from common.settings import Settings


def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list[Message]:
    """Read ``topic`` from the start until ``expected`` messages arrived or ``timeout`` passed.

    Returns whatever arrived (possibly more than expected, if more is there within a short grace).
    """
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            messages.extend(m for m in batch if m.error() is None)
            if len(messages) >= expected:
                # A short grace period catches any surplus (duplicates) behind the expected count.
                messages.extend(m for m in consumer.consume(num_messages=1000, timeout=1.0) if m.error() is None)
                break
    finally:
        consumer.close()
    return messages
