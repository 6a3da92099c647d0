"""Streamlit pieces every page shares: the status bar (Kafka, pipeline, producer, feed) and alerts."""

from __future__ import annotations

import logging
import time

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from dashboard import resources
from dashboard.alerts import Thresholds, evaluate

logger = logging.getLogger(__name__)

THRESHOLDS_KEY = "alert_thresholds"
RAN_THROUGH_APP_KEY = "ran_through_app"


def run_through_app() -> None:
    """Call first on every page: make sure a visitor's first page runs inside app.py's navigation.

    Until a server has run app.py once, Streamlit treats ``pages/`` as an old-style pages folder: a deep
    link (``/producer``) opened first runs the page file alone, without app.py (file names for page
    titles, no logging set-up, no producer autostart). app.py's ``st.navigation`` turns that mode off for
    the server; here we turn it off and rerun once per session, so the first visitor gets the real app at
    the same page. (Once per session: Streamlit's AppTest resets the mode before every run.)
    """
    if PagesManager.uses_pages_directory and not st.session_state.get(RAN_THROUGH_APP_KEY):
        st.session_state[RAN_THROUGH_APP_KEY] = True
        PagesManager.uses_pages_directory = False
        st.rerun()


def thresholds() -> Thresholds:
    """This tab's alert thresholds (edited on the live page)."""
    if THRESHOLDS_KEY not in st.session_state:
        st.session_state[THRESHOLDS_KEY] = Thresholds()
    return st.session_state[THRESHOLDS_KEY]


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 5400 else f"{seconds / 3600:.0f} h ago"


@st.fragment(run_every=5)
def status_bar() -> None:
    """Badges for each moving part, banners when one is down, and the alerts; refreshes itself."""
    settings = resources.settings()
    health = resources.health().check()
    feed = resources.results_feed()
    feed_status = feed.status()
    producer = resources.producer_holder().state()

    with st.container(horizontal=True, key="status-bar"):
        if health.kafka_ok:
            st.badge(f"Kafka: {health.brokers} broker{'s' * (health.brokers != 1)}", icon=":material/check_circle:", color="green")
        else:
            st.badge("Kafka unreachable", icon=":material/error:", color="red")
        if health.pipeline_workers:
            st.badge(f"Pipeline: {health.pipeline_workers} worker{'s' * (health.pipeline_workers != 1)}", icon=":material/check_circle:", color="green")
        elif health.kafka_ok:
            st.badge("Pipeline not running", icon=":material/error:", color="red")
        else:
            st.badge("Pipeline: unknown", icon=":material/help:", color="gray")
        if producer.running and producer.stats is not None:
            st.badge(f"Producer: {producer.stats.rate:.0f} posts/s", icon=":material/play_circle:", color="blue")
        else:
            st.badge("Producer stopped", icon=":material/stop_circle:", color="gray")
        if feed_status.last_result_at is not None:
            st.badge(f"Last result {_age(max(time.time() - feed_status.last_result_at, 0))}", icon=":material/schedule:", color="gray")

    if not health.kafka_ok:
        st.error(f"Kafka is unreachable at {settings.brokers}. The dashboard retries by itself and recovers when it is back.", icon=":material/cloud_off:")
        st.text(f"Last error: {health.detail}")
    elif health.pipeline_workers == 0:
        st.warning(
            f"The pipeline is not running: no worker in consumer group {settings.consumer_group}. "
            "Posts wait in Kafka until it starts (python -m pipeline).",
            icon=":material/pause_circle:",
        )
    elif not feed_status.connected:
        st.info("The live results feed is connecting to the results topic…", icon=":material/sync:")

    limits = thresholds()
    lag = resources.pipeline_lag() if health.kafka_ok else None
    for alert in evaluate(feed.snapshot(limits.window_seconds).series, time.time(), lag, limits):
        st.error(f"**{alert.title}** — {alert.detail}", icon=":material/notifications_active:")
