"""Wiring: Quix applications, topics and settings around the pure definitions in ``definition``."""

from __future__ import annotations

from typing import Any

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from common.contract import SentimentResult
from common.settings import Settings
from pipeline.classifier_sink import BatchClassifier, ClassifierSink
from pipeline.definition import define_classification, define_statistics

STATS_GROUP_SUFFIX = "-stats"


def _application(settings: Settings, consumer_group: str, **options: Any) -> Application:
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_client_config()),
        consumer_group=consumer_group,
        auto_offset_reset=settings.auto_offset_reset,
        processing_guarantee=settings.processing_guarantee,
        producer_extra_config={"compression.type": "lz4", "linger.ms": 2},
        # Outages are ridden out (librdkafka reconnects); Quix's default gives up after 120 s.
        broker_availability_timeout=0,
        loglevel=None,
        **options,
    )


def classifier_application(settings: Settings, classifier: BatchClassifier) -> Application:
    """Raw posts -> validation -> batched model -> results; bad input -> dead letters."""
    max_wait = settings.batch_max_wait_ms / 1000
    app = _application(
        settings,
        settings.consumer_group,
        # A checkpoint is one batch: it fires when batch_size posts are in or max_wait has passed.
        commit_every=settings.batch_size,
        commit_interval=max_wait,
        consumer_poll_timeout=min(max_wait / 2, 0.5),
        state_dir=settings.state_dir / "classifier",
    )
    posts = app.topic(settings.topic_posts, value_deserializer="bytes", key_deserializer="bytes")
    dead_letters = app.topic(settings.topic_dead_letters, value_serializer="json", key_serializer="bytes")
    # Results go through the application's own producer, so under exactly-once they share the
    # checkpoint's transaction with the consumed offsets.
    producer = app._producer  # noqa: SLF001 - Quix offers no public handle on its transactional producer
    results_topic = settings.topic_results

    def emit(result: SentimentResult) -> None:
        producer.produce(topic=results_topic, key=result.author.encode(), value=result.to_bytes())

    sink = ClassifierSink(classifier, emit, settings.model_batch_size)
    define_classification(app.dataframe(posts), sink, dead_letters, settings.max_text_chars)
    return app


def _event_time_ms(value: Any, _headers: Any, timestamp: int, _timestamp_type: Any) -> int:
    return int(value["created_at"] * 1000)


def statistics_application(settings: Settings) -> Application:
    """Results -> per-source tumbling windows on the posts' creation time -> statistics topic."""
    app = _application(
        settings,
        settings.consumer_group + STATS_GROUP_SUFFIX,
        commit_interval=1.0,
        state_dir=settings.state_dir / "statistics",
    )
    results = app.topic(settings.topic_results, value_deserializer="json", timestamp_extractor=_event_time_ms)
    stats = app.topic(settings.topic_stats, value_serializer="json", key_serializer="str")
    define_statistics(app.dataframe(results), stats, settings.stats_window_seconds, settings.stats_grace_seconds)
    return app
