"""Ad-hoc text: posts typed into the app, sent through Kafka into the same pipeline as every post."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from confluent_kafka import KafkaError, Producer
from pydantic import ValidationError

from common.contract import Post
from common.settings import Settings
from dashboard.results_feed import ADHOC_SOURCE

logger = logging.getLogger(__name__)

ADHOC_AUTHOR = "dashboard-user"
MAX_BATCH = 100
REMEMBERED_FAILURES = 2_000


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
    """Thread-safe; one per server. Sending never waits on Kafka: its answer comes later (``delivery_error``)."""

    def __init__(self, settings: Settings, timeout: float = 5.0):
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, str] = OrderedDict()  # post id -> why Kafka did not take it
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

    def submit(self, texts: list[str]) -> list[Post]:
        """Queue the texts as ad-hoc posts (raises SubmissionError for unusable text); Kafka takes them within
        ``timeout`` seconds, or :meth:`delivery_error` says why not."""
        posts = make_posts(texts, self.settings.max_text_chars)
        for post in posts:
            try:
                self._producer.produce(
                    self.settings.topic_posts,
                    post.to_bytes(),
                    post.author.encode(),
                    on_delivery=lambda error, _message, post_id=post.id: self._delivered(post_id, error),
                )
            except BufferError:  # librdkafka's queue is full: Kafka has been away for a while
                raise SubmissionError("Too many posts are waiting for Kafka; try again when it is back.") from None
        self._producer.poll(0)
        return posts

    def delivery_error(self, post_id: str) -> str | None:
        """Why Kafka did not take this post, once it is known (None: taken, or not known yet)."""
        self._producer.poll(0)  # runs the delivery callbacks that are due, without waiting
        with self._lock:
            return self._failures.get(post_id)

    def _delivered(self, post_id: str, error: KafkaError | None) -> None:
        if error is None:
            return
        logger.debug("Ad-hoc post %s not delivered: %s", post_id, error.str())
        with self._lock:
            self._failures[post_id] = error.str()
            if len(self._failures) > REMEMBERED_FAILURES:
                self._failures.popitem(last=False)
