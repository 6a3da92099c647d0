"""Ad-hoc text: posts typed into the app, sent through Kafka into the same pipeline as every post."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, Message, Producer
from pydantic import ValidationError

from common.contract import Post
from common.settings import Settings
from dashboard.results_feed import ADHOC_SOURCE

logger = logging.getLogger(__name__)

ADHOC_AUTHOR = "dashboard-user"
MAX_BATCH = 100


class SubmissionError(ValueError):
    """The texts cannot be sent; the message says why, for the person who typed them."""


def batch_lines(text: str) -> list[str]:
    """Batch mode: one post per non-blank line."""
    return [line for line in text.splitlines() if line.strip()]


def make_posts(texts: list[str], max_chars: int) -> list[Post]:
    if not texts:
        raise SubmissionError("Type some text first.")
    if len(texts) > MAX_BATCH:
        raise SubmissionError(f"{len(texts)} lines: a batch holds at most {MAX_BATCH} posts.")
    posts = []
    for number, text in enumerate(texts, start=1):
        where = f"Line {number}" if len(texts) > 1 else "The text"
        if len(text) > max_chars:
            raise SubmissionError(f"{where} has {len(text):,} characters; the limit is {max_chars:,}.")
        try:
            posts.append(Post(author=ADHOC_AUTHOR, source=ADHOC_SOURCE, text=text))
        except ValidationError:
            raise SubmissionError(f"{where} has no visible characters.") from None
    return posts


class AdhocSubmitter:
    """Thread-safe (librdkafka producers are): one per server."""

    def __init__(self, settings: Settings, timeout: float = 5.0):
        self.settings = settings
        self.timeout = timeout
        self._producer = Producer(
            {
                **settings.kafka_client_config(),
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(timeout * 1000),
                "client.id": "sentistream-dashboard-adhoc",
                "error_cb": lambda error: logger.debug("Ad-hoc producer: %s", error.str()),
            }
        )
        self._lock = threading.Lock()

    def submit(self, texts: list[str]) -> list[Post]:
        """Send the texts as ad-hoc posts and wait for Kafka to take them; raises SubmissionError."""
        posts = make_posts(texts, self.settings.max_text_chars)
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error.str())

        with self._lock:  # one submission's flush does not wait on (or report) another's
            for post in posts:
                self._producer.produce(self.settings.topic_posts, post.to_bytes(), post.author.encode(), on_delivery=delivered)
            remaining = self._producer.flush(self.timeout)
        if remaining or failures:
            detail = failures[0] if failures else "no answer"
            raise SubmissionError(f"Kafka did not take the post ({detail}); is Kafka running? Try again shortly.")
        return posts
