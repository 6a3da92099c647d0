"""Wiring: Quix applications, topics and settings around the pure definitions in ``definition``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.internal_producer import InternalProducer
from quixstreams.kafka.configuration import ConnectionConfig

from common.contract import MESSAGE_FRAMING_BYTES
from common.settings import Settings
from pipeline.classifier_sink import BatchClassifier, ClassifierSink
from pipeline.definition import Gate, PostRules, define_classification, define_statistics
from pipeline.outputs import Outputs, topic_message_limits
from pipeline.poison import InFlight
from pipeline.results_codec import ResultDeserializer, event_time_ms

STATS_GROUP_SUFFIX = "-stats"


def output_limits(settings: Settings) -> dict[str, int]:
    """The largest message each topic the workers write takes (see ``pipeline.outputs``)."""
    return topic_message_limits(settings, [settings.topic_results, settings.topic_dead_letters, settings.topic_stats])


def _application(
    settings: Settings, consumer_group: str, member: str, limits: dict[str, int], **options: Any
) -> Application:
    producer_config: dict[str, Any] = {
        "compression.type": "lz4",
        "linger.ms": 2,
        "message.max.bytes": settings.message_max_bytes,
        # Messages that each fit would still be refused together if librdkafka batched them past a topic's
        # limit: the broker checks the whole batch against max.message.bytes. (A message larger than this
        # goes in a batch of its own.)
        "batch.size": min(limits.values()) - MESSAGE_FRAMING_BYTES,
    }
    # ``member`` names the worker's slot (see pipeline.worker.WorkerIdentity): the same across its restarts,
    # unique among live workers.
    if settings.processing_guarantee == "exactly-once":
        # Stable per worker slot (Quix would pick a random one per process): a restarted worker's producer
        # fences its dead predecessor and aborts its open transaction at once, instead of the broker waiting
        # transaction.timeout.ms, during which no read_committed reader (the dashboard, the statistics, the
        # partitions' next owner) gets past the open transaction.
        producer_config["transactional.id"] = f"{consumer_group}-{member}"
        producer_config["transaction.timeout.ms"] = settings.transaction_timeout_ms
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_client_config()),
        consumer_group=consumer_group,
        auto_offset_reset=settings.auto_offset_reset,
        processing_guarantee=settings.processing_guarantee,
        producer_extra_config=producer_config,
        consumer_extra_config={
            "max.poll.interval.ms": settings.max_poll_interval_ms,
            # Static membership, for the same reason: a worker restarted within session.timeout.ms takes its
            # predecessor's place and partitions at once, instead of the group waiting for the dead member to
            # time out and then stopping every worker for a rebalance.
            "group.instance.id": member,
        },
        # Outages are ridden out (librdkafka reconnects); Quix's default gives up after 120 s.
        broker_availability_timeout=0,
        loglevel=None,
        **options,
    )


def transactional_producer(app: Application) -> InternalProducer:
    """The application's own producer: what it sends joins the checkpoint's transaction under exactly-once.

    Quix offers no public handle on it (quixstreams 3.28.1; tests/pipeline/test_application.py breaks
    if an upgrade moves it).
    """
    producer = app._producer  # noqa: SLF001
    assert isinstance(producer, InternalProducer)
    return producer


def _outputs(settings: Settings, app: Application, limits: dict[str, int]) -> Outputs:
    producer = transactional_producer(app)

    def produce(topic: str, key: bytes | None, value: bytes) -> None:
        producer.produce(topic=topic, key=key, value=value)

    return Outputs.for_settings(settings, produce, limits)


def classifier_application(
    settings: Settings,
    classifier: BatchClassifier,
    member: str,
    gate: Gate,
    in_flight: InFlight | None = None,
    on_message_processed: Callable[[str, int, int], None] | None = None,
    one_message_per_checkpoint: bool = False,
) -> Application:
    """Raw posts -> poison gate and validation -> batched model -> results; the rest -> dead letters."""
    max_wait = settings.batch_max_wait_ms / 1000
    limits = output_limits(settings)
    app = _application(
        settings,
        settings.consumer_group,
        member,
        limits,
        # A checkpoint is one batch: it fires when batch_size posts are in or max_wait has passed.
        commit_every=1 if one_message_per_checkpoint else settings.batch_size,
        commit_interval=0 if one_message_per_checkpoint else max_wait,
        consumer_poll_timeout=min(max_wait / 2, 0.5),
        state_dir=settings.state_dir / "classifier",
        on_message_processed=on_message_processed,
    )
    posts = app.topic(settings.topic_posts, value_deserializer="bytes", key_deserializer="bytes")
    outputs = _outputs(settings, app, limits)
    sink = ClassifierSink(classifier, outputs, settings.model_batch_size, in_flight)
    rules = PostRules(settings.max_text_chars, settings.model_language_set)
    define_classification(app.dataframe(posts), sink, outputs, gate, rules)
    return app


def statistics_application(settings: Settings, member: str) -> Application:
    """Results -> per-source tumbling windows on the posts' creation time -> statistics topic."""
    limits = output_limits(settings)
    app = _application(
        settings,
        settings.consumer_group + STATS_GROUP_SUFFIX,
        member,
        limits,
        commit_interval=1.0,
        state_dir=statistics_state_dir(settings),
    )
    results = app.topic(
        settings.topic_results, value_deserializer=ResultDeserializer(), timestamp_extractor=event_time_ms
    )
    stats = app.topic(settings.topic_stats, value_serializer="json", key_serializer="str")
    define_statistics(
        app.dataframe(results),
        stats,
        _outputs(settings, app, limits),
        settings.stats_window_seconds,
        settings.stats_grace_seconds,
    )
    return app


def statistics_state_dir(settings: Settings) -> Path:
    return settings.state_dir / "statistics"
