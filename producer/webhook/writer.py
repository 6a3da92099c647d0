"""``AcknowledgedWriter``: writes posts to the raw topic and lets a request await Kafka's acknowledgement.

An id written in the recent past (or still in flight) is not written again: a client retrying after a timeout
or a 503 gets its acknowledgement without a second copy in the topic, and two clients sending the same post at
once share one write.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from common.contract import Post
from common.settings import Settings

logger = logging.getLogger(__name__)


class KafkaRefused(RuntimeError):
    """Kafka did not acknowledge every post (unreachable, timed out, queue full); the client may retry."""


class AcknowledgedWriter:
    """Use in an event loop: :meth:`start`, then :meth:`write` from any number of requests, then :meth:`close`."""

    def __init__(self, settings: Settings, *, remembered_ids: int = 100_000):
        self.topic = settings.topic_posts
        self._settings = settings
        self.remembered_ids = remembered_ids
        self._recent: OrderedDict[str, asyncio.Future[None]] = OrderedDict()
        self._producer: Producer | None = None
        self._fatal: KafkaError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = self._new_producer()
        self._poller = threading.Thread(target=self._poll, name="webhook-delivery-reports", daemon=True)
        self._poller.start()

    def _new_producer(self) -> Producer:
        return Producer(
            {
                **self._settings.kafka_client_config(),
                "enable.idempotence": True,  # librdkafka's retries never duplicate or reorder a post
                "acks": "all",
                "linger.ms": 5,  # a request waits for its acknowledgement: batch little
                "message.timeout.ms": int(self._settings.webhook_delivery_timeout_seconds * 1000),
                "client.id": "sentistream-webhook",
                "error_cb": self._on_error,
            }
        )

    def close(self, timeout: float = 30.0) -> None:
        """Stop the delivery-report thread, then flush what is still in flight (serving its reports here)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if self._producer is not None:
            remaining = self._producer.flush(timeout)
            if remaining:
                logger.warning("%d posts still undelivered after flushing for %.0f s", remaining, timeout)
            self._producer = None  # its error callback refers to this writer: let the client go now, not at a GC

    async def write(self, posts: Sequence[Post]) -> int:
        """Return once Kafka has acknowledged every post, with how many were remembered as written already (not
        written again); else raise :class:`KafkaRefused`."""
        if self._fatal is not None:
            self._replace_producer()
        pending, remembered = [], 0
        for post in posts:
            known = self._recent.get(post.id)
            if known is None:
                pending.append(self._produce(post))
            else:
                self._recent.move_to_end(post.id)
                pending.append(known)
                remembered += 1
        failures = [
            outcome
            for outcome in await asyncio.gather(*pending, return_exceptions=True)
            if isinstance(outcome, BaseException)
        ]
        if failures:
            raise KafkaRefused(f"{len(failures)} of {len(posts)} posts not acknowledged: {failures[0]}")
        return remembered

    def _produce(self, post: Post) -> asyncio.Future[None]:
        assert self._loop is not None and self._producer is not None, "start() first"
        acknowledged: asyncio.Future[None] = self._loop.create_future()
        try:
            self._producer.produce(
                self.topic,
                post.to_bytes(),
                post.author.encode(),
                on_delivery=lambda error, _message: self._loop.call_soon_threadsafe(
                    self._settle, post.id, acknowledged, error
                ),
            )
        except (BufferError, KafkaException) as exc:  # librdkafka's queue is full, or the producer is unusable
            acknowledged.set_exception(KafkaRefused(f"the Kafka client refused the post: {exc}"))
            return acknowledged
        self._recent[post.id] = acknowledged
        while len(self._recent) > self.remembered_ids:
            self._recent.popitem(last=False)
        return acknowledged

    def _settle(self, post_id: str, acknowledged: asyncio.Future[None], error: KafkaError | None) -> None:
        if error is None:
            acknowledged.set_result(None)
            return
        # Forget it, so that a retry writes it again.
        if self._recent.get(post_id) is acknowledged:
            del self._recent[post_id]
        acknowledged.set_exception(KafkaRefused(f"{error.str()} ({error.name()})"))

    def _replace_producer(self) -> None:
        # A fatal error (the idempotent producer lost its guarantees) leaves the client unusable: start afresh.
        logger.warning("Replacing the Kafka producer after a fatal error: %s", self._fatal.str())
        self._fatal = None
        broken, self._producer = self._producer, self._new_producer()
        broken.purge()  # its posts fail now (a retry writes them again) instead of waiting for their timeout
        broken.poll(0)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            logger.error("Fatal Kafka producer error: %s", error.str())
        else:
            logger.warning("Kafka client error: %s (%s)", error.str(), error.name())
