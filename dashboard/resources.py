"""The server-wide objects every page shares, held by ``st.cache_resource`` (one per server, per settings).

Each is keyed by the settings it was built with, so a test (or a settings change) gets its own. The key is
the settings' JSON, in which the SASL password (a ``SecretStr``) is masked: the secret never becomes a cache
key. (Settings are read once per process, so two that differ only by their password never meet.)
"""

from __future__ import annotations

import atexit
import logging

import streamlit as st

from common.settings import Settings, get_settings
from dashboard.adhoc import AdhocSubmitter
from dashboard.cluster_monitor import ClusterMonitor
from dashboard.live_control import LiveSourceHolder
from dashboard.model_control import BuildLauncher, ChoicePublisher, PretrainedChecker
from dashboard.producer_control import ProducerHolder
from dashboard.results_feed import ResultsFeed

logger = logging.getLogger(__name__)


def settings() -> Settings:
    return get_settings()


def _key() -> str:
    return settings().model_dump_json()


def _stop_feed(feed: ResultsFeed) -> None:
    feed.stop()


def _stop_monitor(monitor: ClusterMonitor) -> None:
    monitor.stop()


def _stop_producer(holder: ProducerHolder) -> None:
    holder.stop()


def _stop_live_sources(holder: LiveSourceHolder) -> None:
    holder.stop_all()


def _close_publisher(publisher: ChoicePublisher) -> None:
    publisher.close()


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


@st.cache_resource(show_spinner=False, on_release=_stop_live_sources)
def _live_sources(key: str, _settings: Settings) -> LiveSourceHolder:
    holder = LiveSourceHolder(_settings)
    atexit.register(holder.stop_all)  # as the producer's: the children stop (and flush) with the server
    return holder


@st.cache_resource(show_spinner=False, on_release=_stop_monitor)
def _cluster_monitor(key: str, _settings: Settings) -> ClusterMonitor:
    logger.info("Dashboard started with %r", _settings)  # the password shows as '**********'
    return ClusterMonitor(_settings).start()


@st.cache_resource(show_spinner=False)
def _submitter(key: str, _settings: Settings) -> AdhocSubmitter:
    return AdhocSubmitter(_settings)


@st.cache_resource(show_spinner=False, on_release=_close_publisher)
def _choice_publisher(key: str, _settings: Settings) -> ChoicePublisher:
    return ChoicePublisher(_settings)


@st.cache_resource(show_spinner=False)
def _build_launcher(key: str, _settings: Settings) -> BuildLauncher:
    return BuildLauncher(_settings)


@st.cache_resource(show_spinner=False)
def _pretrained_checker() -> PretrainedChecker:
    return PretrainedChecker()


def results_feed() -> ResultsFeed:
    return _results_feed(_key(), settings())


def producer_holder() -> ProducerHolder:
    return _producer_holder(_key(), settings())


def live_sources() -> LiveSourceHolder:
    return _live_sources(_key(), settings())


def cluster_monitor() -> ClusterMonitor:
    return _cluster_monitor(_key(), settings())


def submitter() -> AdhocSubmitter:
    return _submitter(_key(), settings())


def choice_publisher() -> ChoicePublisher:
    return _choice_publisher(_key(), settings())


def build_launcher() -> BuildLauncher:
    return _build_launcher(_key(), settings())


def pretrained_checker() -> PretrainedChecker:
    return _pretrained_checker()
