"""The webhook's counters: for ``GET /health``, and as a :class:`~common.contract.SourceStatus` on the source
status topic like every live source's (``posts`` = posts Kafka acknowledged, ``duplicates`` = posts sent again
by a client's retry and acknowledged without a second copy, ``skipped`` = requests refused, by reason, with
``kafka_unavailable`` for the 503s; ``retrying`` while the last write was refused by Kafka)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from confluent_kafka import Producer

from common.contract import SourceState, SourceStatus
from common.settings import Settings
from producer.rate import RateMeter

logger = logging.getLogger(__name__)

NAME = "webhook"
KAFKA_UNAVAILABLE = "kafka_unavailable"
# The last (stopped) status is worth a short wait, not a slow stop when Kafka is away: readers also tell a
# vanished source by its status growing older than its interval.
STOP_FLUSH_SECONDS = 1.0


class WebhookStatus:
    def __init__(self, detail: str, interval: float):
        self.detail = detail
        self.interval = interval
        self.state = SourceState.STARTING
        self.accepted = 0
        self.duplicates = 0
        self.refused: Counter[str] = Counter()
        self.failures = 0  # 503s in a row
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_post_at: float | None = None
        self.started_at = time.time()
        self._meter = RateMeter()

    def wrote(self, posts: int, duplicates: int) -> None:
        self.accepted += posts
        self.duplicates += duplicates
        self.failures = 0
        self.state = SourceState.CONNECTED
        if posts:
            self.last_post_at = time.time()
        self._meter.record(self.accepted)

    def refuse(self, reason: str) -> None:
        self.refused[reason] += 1

    def fail(self, error: str) -> None:
        self.refused[KAFKA_UNAVAILABLE] += 1
        self.failures += 1
        self.state = SourceState.RETRYING
        self.last_error, self.last_error_at = error[:1000], time.time()

    def health(self) -> dict[str, object]:
        errors = self.refused[KAFKA_UNAVAILABLE]
        return {
            "status": "ok",
            "accepted": self.accepted,
            "rejected": sum(self.refused.values()) - errors,
            "errors": errors,
        }

    def snapshot(self) -> SourceStatus:
        return SourceStatus(
            name=NAME,
            network=NAME,
            state=self.state,
            detail=self.detail,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            failures=self.failures,
            posts=self.accepted,
            posts_per_second=round(self._meter.rate(self.accepted), 3),
            duplicates=self.duplicates,
            skipped=dict(self.refused),
            last_post_at=self.last_post_at,
            started_at=self.started_at,
            sent_at=time.time(),
            interval_seconds=self.interval,
        )


async def publish_status(settings: Settings, status: WebhookStatus) -> None:
    """Publish ``status`` every interval until cancelled, then once more as stopped."""
    producer = Producer(
        {
            **settings.kafka_client_config(),
            "client.id": "sentistream-webhook-status",
            # The writer's client reports the same brokers' trouble.
            "error_cb": lambda error: logger.debug("Status producer: %s", error.str()),
        }
    )

    def send() -> None:
        producer.produce(settings.topic_source_status, status.snapshot().to_bytes(), NAME.encode())
        producer.poll(0)

    try:
        while True:
            send()
            await asyncio.sleep(status.interval)
    finally:
        status.state = SourceState.STOPPED
        send()
        if producer.flush(STOP_FLUSH_SECONDS):
            logger.warning("The webhook's last status was not delivered")
