"""The server-wide objects every page shares, held by ``st.cache_resource`` (one per server, per settings).

Each is keyed by the settings it was built with, so a test (or a settings change) gets its own.
"""

from __future__ import annotations

import atexit
import logging

import streamlit as st
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from common.settings import Settings, get_settings
from dashboard.adhoc import AdhocSubmitter
from dashboard.health import HealthProbe
from dashboard.monitoring import cluster_view, group_view
from dashboard.producer_control import ProducerHolder
from dashboard.results_feed import ResultsFeed

logger = logging.getLogger(__name__)


def settings() -> Settings:
    return get_settings()


def _key() -> str:
    return settings().model_dump_json()


def _stop_feed(feed: ResultsFeed) -> None:
    feed.stop()


def _stop_producer(holder: ProducerHolder) -> None:
    holder.stop()


@st.cache_resource(show_spinner=False, on_release=_stop_feed)
def _results_feed(key: str, _settings: Settings) -> ResultsFeed:
    return ResultsFeed(_settings).start()


@st.cache_resource(show_spinner=False, on_release=_stop_producer)
def _producer_holder(key: str, _settings: Settings) -> ProducerHolder:
    holder = ProducerHolder(_settings)
    # Streamlit does not release its resources on exit: stop the producer ourselves, so that what it sent
    # is flushed to Kafka (and counted) before the server goes.
    atexit.register(holder.stop)
    try:
        holder.autostart()
    except Exception:  # a bad autostart must not take the app down; the page shows the producer stopped
        logger.exception("Producer autostart failed")
    return holder


@st.cache_resource(show_spinner=False)
def _admin(key: str, _settings: Settings) -> AdminClient:
    # Quiet: an unreachable cluster is shown on every page, not repeated in the server log.
    return AdminClient({**_settings.kafka_client_config(), "error_cb": lambda error: logger.debug("Admin client: %s", error.str())})


@st.cache_resource(show_spinner=False)
def _health(key: str, _settings: Settings) -> HealthProbe:
    return HealthProbe(_settings, admin())


@st.cache_resource(show_spinner=False)
def _submitter(key: str, _settings: Settings) -> AdhocSubmitter:
    return AdhocSubmitter(_settings)


def results_feed() -> ResultsFeed:
    return _results_feed(_key(), settings())


def producer_holder() -> ProducerHolder:
    return _producer_holder(_key(), settings())


def admin() -> AdminClient:
    return _admin(_key(), settings())


def health() -> HealthProbe:
    return _health(_key(), settings())


def submitter() -> AdhocSubmitter:
    return _submitter(_key(), settings())


@st.cache_data(ttl=5, show_spinner=False)
def _pipeline_lag(key: str, group: str, topic: str) -> int | None:
    try:
        cluster = cluster_view(admin(), [topic], timeout=3.0)
        return group_view(admin(), group, topic, cluster, timeout=3.0).total_lag
    except KafkaException:
        return None


def pipeline_lag() -> int | None:
    """Posts waiting for the pipeline (None when Kafka does not answer); at most 5 s old."""
    current = settings()
    return _pipeline_lag(_key(), current.consumer_group, current.topic_posts)
