"""Is Kafka reachable, and is the pipeline running? One cheap probe, shared by every page and tab."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from common.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    kafka_ok: bool
    brokers: int
    pipeline_workers: int | None  # members of the pipeline's consumer group; None when unknown
    detail: str | None  # why Kafka is not OK
    checked_at: float


class HealthProbe:
    """Answers from a cache younger than ``max_age`` seconds, so many tabs cost one query."""

    def __init__(self, settings: Settings, admin: AdminClient, max_age: float = 3.0, timeout: float = 2.0):
        self.settings = settings
        self.admin = admin
        self.max_age = max_age
        self.timeout = timeout
        self._lock = threading.Lock()
        self._last: Health | None = None

    def check(self) -> Health:
        with self._lock:
            if self._last is None or time.time() - self._last.checked_at >= self.max_age:
                self._last = self._probe()
            return self._last

    def _probe(self) -> Health:
        now = time.time()
        try:
            metadata = self.admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            detail = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
            return Health(False, 0, None, detail, now)
        group = self.settings.consumer_group
        try:
            description = self.admin.describe_consumer_groups([group], request_timeout=self.timeout)[group].result()
            workers: int | None = len(description.members)
        except KafkaException as exc:
            logger.debug("Describing %s failed: %s", group, exc)
            workers = None
        return Health(True, len(metadata.brokers), workers, None, now)
