"""Running a live source: a Quix Streams application whose only work is the source, writing to the raw topic."""

from __future__ import annotations

import logging

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from common.settings import Settings
from common.topics import ensure_topics
from producer.live.base import LiveSource

logger = logging.getLogger(__name__)

PRODUCER_CONFIG: dict[str, str | int | bool] = {
    "enable.idempotence": True,  # librdkafka's retries never duplicate or reorder a post
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    # librdkafka's default, as the other producers use: an author's posts land in the same partition whoever
    # sends them (Quix would choose murmur2).
    "partitioner": "consistent_random",
}


def state_group(settings: Settings) -> str:
    """The consumer group that names the sources' state changelog topics: stable, so a restart finds its state."""
    return f"{settings.consumer_group}-live"


def live_application(settings: Settings) -> Application:
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_client_config()),
        consumer_group=state_group(settings),
        state_dir=settings.state_dir / "live",
        producer_extra_config=PRODUCER_CONFIG,
        # Outages are ridden out (librdkafka reconnects); Quix's default gives up after 120 s.
        broker_availability_timeout=0,
        loglevel=None,
    )


def run_live_source(settings: Settings, source: LiveSource) -> None:
    """Run ``source`` in its own process until it ends or SIGINT / SIGTERM stops it (it flushes first)."""
    ensure_topics(settings)  # the raw and status topics
    app = live_application(settings)
    app.add_source(source, app.topic(settings.topic_posts, key_serializer="bytes", value_serializer="bytes"))
    logger.info("Running the %s source %r into %s", source.network, source.name, settings.topic_posts)
    app.run()
