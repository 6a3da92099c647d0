"""The tests' one way to put messages on a topic: an idempotent producer, every message acknowledged."""

from __future__ import annotations

from confluent_kafka import Producer

from common.contract import Post
from common.settings import Settings


def send(settings: Settings, messages: list[tuple[bytes | None, bytes | None]], topic: str | None = None) -> None:
    """``(key, value)`` pairs onto ``topic`` (default: the raw posts topic), in order; fails unless all are acked."""
    producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic or settings.topic_posts, key=key, value=value)
    assert producer.flush(30) == 0


def send_posts(settings: Settings, posts: list[Post]) -> None:
    """Posts as the producer sends them: keyed by author, JSON."""
    send(settings, [(post.author.encode(), post.to_bytes()) for post in posts])
