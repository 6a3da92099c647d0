"""The supervisor's heartbeat: its workers' states on the status topic, for the dashboard to show."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException, Producer

from common.contract import PipelineStatus
from common.settings import Settings

logger = logging.getLogger(__name__)


class StatusPublisher:
    """Fire and forget: a heartbeat that cannot be sent now is worthless later, and must never block."""

    def __init__(self, settings: Settings):
        self._topic = settings.topic_pipeline_status
        self._producer = Producer(
            {
                **settings.kafka_client_config(),
                "client.id": "sentistream-supervisor",
                "linger.ms": 0,
                # A heartbeat older than this tells nothing: drop it rather than queue it through an outage.
                "message.timeout.ms": max(int(settings.status_interval_seconds * 3000), 10_000),
                "error_cb": lambda error: logger.debug("Status producer: %s", error.str()),
            }
        )

    def publish(self, status: PipelineStatus) -> None:
        try:
            self._producer.produce(self._topic, key=status.instance.encode(), value=status.to_bytes())
        except (BufferError, KafkaException) as exc:
            logger.debug("Status not sent: %s", exc)
        self._producer.poll(0)

    def close(self, timeout: float = 5.0) -> None:
        self._producer.flush(timeout)
