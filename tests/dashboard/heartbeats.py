"""Pipeline supervisor heartbeats for the dashboard's tests, written to the real status topic like a supervisor does."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Producer

from common.contract import PipelineStatus, WorkerState, WorkerStatus
from common.settings import Settings


def worker(
    slot: int = 0, state: WorkerState = WorkerState.RUNNING, role: str = "classify", **fields: object
) -> WorkerStatus:
    values = {"pid": 1000 + slot, "restarts": 0, "restarts_total": 0} | fields
    return WorkerStatus(slot=slot, role=role, state=state, **values)


def heartbeat(
    *workers: WorkerStatus,
    group: str = "sentiment-pipeline",
    age: float = 0.0,
    interval: float = 5.0,
    stopping: bool = False,
    instance: str | None = None,
    host: str = "worker-host",
    model: str | None = None,
    model_version: str | None = None,
    waiting_for_model: str | None = None,
) -> PipelineStatus:
    now = time.time()
    return PipelineStatus(
        instance=instance or uuid.uuid4().hex,
        host=host,
        pid=4242,
        consumer_group=group,
        started_at=now - age - 60,
        sent_at=now - age,
        interval_seconds=interval,
        stopping=stopping,
        workers=list(workers),
        model=model,
        model_version=model_version,
        waiting_for_model=waiting_for_model,
    )


def publish(settings: Settings, *records: PipelineStatus | tuple[bytes | None, bytes | None]) -> None:
    """Heartbeats keyed by their instance, or raw (key, value) records as any other producer might write."""
    producer = Producer(settings.kafka_client_config())
    for record in records:
        key, value = (record.instance.encode(), record.to_bytes()) if isinstance(record, PipelineStatus) else record
        producer.produce(settings.topic_pipeline_status, value, key)
    assert producer.flush(30) == 0
