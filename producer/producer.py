"""``PostProducer``: writes posts from a source to the raw topic at a target rate, with live stats.

Usable blocking (:meth:`PostProducer.run`, the CLI) or in the background (:meth:`PostProducer.start`
/ :meth:`PostProducer.stop`, the Streamlit app), with the rate changeable while it runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from common.contract import Post
from common.settings import Settings
from producer.rate import RateMeter, RatePacer

logger = logging.getLogger(__name__)

PRODUCER_CONFIG: dict[str, str | int | bool] = {
    "enable.idempotence": True,  # retries never duplicate or reorder a post
    "acks": "all",
    "compression.type": "lz4",  # cheap on CPU; short English texts compress well in batches
    "linger.ms": 20,  # batch for up to 20 ms: fewer, bigger requests at high rates
    "client.id": "sentistream-producer",
    # Successes are derived (sent - failed - still queued): a Python callback per delivered post
    # would cost more than producing it.
    "delivery.report.only.error": True,
}


@dataclass(frozen=True)
class ProducerStats:
    """A snapshot of one run. ``queued`` = sent but not yet delivered or failed (in flight)."""

    sent: int
    delivered: int
    failed: int
    queued: int
    rate: float  # measured posts/s over the last few seconds
    target_rate: float | None  # None = as fast as possible
    started_at: float | None  # UNIX time the run started
    last_error: str | None

    def summary(self) -> str:
        target = "max" if self.target_rate is None else f"{self.target_rate:g}/s"
        return (
            f"sent={self.sent} delivered={self.delivered} failed={self.failed} queued={self.queued} "
            f"rate={self.rate:.1f}/s target={target}" + (f" last_error={self.last_error!r}" if self.last_error else "")
        )


class _QuietWarnings:
    """Logs each distinct message at once, then at most once per ``interval`` with a suppressed count."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}  # message -> (last logged, suppressed since)

    def warn(self, message: str) -> None:
        now = time.monotonic()
        logged_at, suppressed = self._last.get(message, (float("-inf"), 0))
        if now - logged_at < self.interval:
            self._last[message] = (logged_at, suppressed + 1)
            return
        extra = f" ({suppressed} more like this in the last {now - logged_at:.0f} s)" if suppressed else ""
        logger.warning("%s%s", message, extra)
        self._last[message] = (now, 0)


class PostProducer:
    """Sends posts from ``source`` to ``settings.topic_posts``: key = author, value = post JSON.

    ``rate`` is posts per second (None or 0 = as fast as possible). Counters restart with each run.
    Delivery reports are served on the thread that runs :meth:`run`.
    """

    def __init__(
        self,
        settings: Settings,
        source: Iterator[Post],
        rate: float | None,
        *,
        stats_interval: float | None = 10.0,
        flush_timeout: float = 30.0,
        extra_config: Mapping[str, str | int | bool] | None = None,
    ):
        self.topic = settings.topic_posts
        self.source = source
        self.stats_interval = stats_interval
        self.flush_timeout = flush_timeout
        self.config: dict[str, object] = {
            **settings.kafka_client_config(),
            **PRODUCER_CONFIG,
            **(extra_config or {}),
            "error_cb": self._on_error,
            "on_delivery": self._on_delivery,
        }
        self._producer = Producer(self.config)
        self._pacer = RatePacer(rate)
        self._meter = RateMeter()
        self._warnings = _QuietWarnings()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._sent = self._failed = 0  # _sent is written by the run thread only
        self._started_at: float | None = None
        self._last_error: str | None = None

    # --- control -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def rate(self) -> float | None:
        return self._pacer.rate

    def set_rate(self, rate: float | None) -> None:
        """Thread-safe: takes effect immediately, even while the run sleeps between posts."""
        self._pacer.set_rate(rate)
        logger.info("Target rate set to %s", "max" if self._pacer.rate is None else f"{self._pacer.rate:g}/s")

    def start(self, count: int | None = None, duration: float | None = None) -> None:
        """:meth:`run` in a background daemon thread; returns at once."""
        if self._running:
            raise RuntimeError("the producer is already running")
        self._running = True  # set here, not in the thread, so `running` is true as soon as we return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run_logging_errors, args=(count, duration), name="post-producer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> ProducerStats:
        """Ask the run to end; it flushes what is in flight. Waits for a background run to finish."""
        if not self._running:
            return self.stats()
        self._stop.set()
        self._pacer.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self.stats()

    def stats(self) -> ProducerStats:
        while True:
            with self._lock:
                sent, failed, last_error = self._sent, self._failed, self._last_error
            queued = len(self._producer)
            if (self._sent, self._failed) == (sent, failed):  # nothing sent or failed meanwhile: one moment's figures
                break
        return ProducerStats(
            sent=sent,
            delivered=max(0, sent - failed - queued),
            failed=failed,
            queued=queued,
            rate=self._meter.rate(sent),
            target_rate=self._pacer.rate,
            started_at=self._started_at,
            last_error=last_error,
        )

    # --- the send loop -----------------------------------------------------------------------

    def run(self, count: int | None = None, duration: float | None = None) -> ProducerStats:
        """Send until ``count`` posts, ``duration`` seconds, the source's end or :meth:`stop`; then flush.

        Blocking; returns the final stats.
        """
        if threading.current_thread() is not self._thread:
            if self._running:
                raise RuntimeError("the producer is already running")
            self._running = True
            self._stop.clear()
        try:
            self._reset()
            deadline = None if duration is None else time.monotonic() + duration
            next_log = time.monotonic() + self.stats_interval if self.stats_interval else None
            logger.info(
                "Producing to %s at %s", self.topic, "max rate" if self.rate is None else f"{self.rate:g} posts/s"
            )
            while not self._stop.is_set() and (count is None or self._sent < count):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if next_log is not None and now >= next_log:
                    logger.info("Producer: %s", self.stats().summary())
                    next_log = now + self.stats_interval
                # Wake for the deadline and the stats log even at a very low rate.
                wake_at = min((t for t in (deadline, next_log) if t is not None), default=None)
                due = self._pacer.wait(max_wait=None if wake_at is None else wake_at - now)
                if count is not None:
                    due = min(due, count - self._sent)
                if not self._send_batch(due):
                    break
                self._producer.poll(0)  # serve delivery reports
                self._meter.record(self._sent)
            self._flush()
            final = self.stats()
            logger.info("Producer finished: %s", final.summary())
            return final
        finally:
            self._running = False

    def _run_logging_errors(self, count: int | None, duration: float | None) -> None:
        try:
            self.run(count, duration)
        except Exception as exc:  # a background thread has nobody else to tell
            logger.exception("Producer run failed")
            with self._lock:
                self._last_error = f"run failed: {exc!r}"

    def _reset(self) -> None:
        with self._lock:
            self._sent = self._failed = 0
            self._last_error = None
        self._started_at = time.time()
        self._meter.reset()
        self._pacer.restart()

    def _send_batch(self, due: int) -> bool:
        """Send ``due`` posts; False when the source is exhausted or a stop interrupted a full queue."""
        for _ in range(due):
            post = next(self.source, None)
            if post is None:
                logger.info("The source has no more posts")
                return False
            if not self._produce(post):
                return False
        return True

    def _produce(self, post: Post) -> bool:
        value, key = post.to_bytes(), post.author.encode()
        while True:
            try:
                self._producer.produce(self.topic, value, key)
                break
            except BufferError:
                # librdkafka's queue is full: wait for deliveries to make room, never drop the post.
                self._producer.poll(0.05)
                if self._stop.is_set():
                    return False
        self._sent += 1
        return True

    def _flush(self) -> None:
        remaining = self._producer.flush(self.flush_timeout)
        if remaining:
            logger.warning("%d posts still undelivered after flushing for %.0f s", remaining, self.flush_timeout)

    # --- librdkafka callbacks (served on the run thread, by poll/flush) -------------------------

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:  # only failures are reported (delivery.report.only.error)
            return
        with self._lock:
            self._failed += 1
            self._last_error = error.str()
        self._warnings.warn(f"Delivery to {message.topic()} failed: {error.str()} ({error.name()})")

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            # e.g. the idempotent producer lost its guarantees: it cannot send any more.
            logger.error("Fatal producer error, stopping: %s", error.str())
            with self._lock:
                self._last_error = f"fatal: {error.str()}"
            self._stop.set()
            self._pacer.interrupt()
            return
        self._warnings.warn(f"Kafka client error: {error.str()} ({error.name()})")
