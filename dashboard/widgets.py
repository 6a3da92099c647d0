"""Streamlit pieces every page shares: the status bar (Kafka, pipeline, producer, feed) and alerts."""

from __future__ import annotations

import re
import time
from datetime import datetime

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from common.contract import WorkerState
from common.settings import Settings
from dashboard import charts, resources
from dashboard.alerts import Thresholds, evaluate
from dashboard.background import ThreadHealth
from dashboard.cluster_monitor import ClusterSnapshot
from dashboard.pipeline_health import PipelineHealth, PipelineState, TroubledWorker
from dashboard.producer_control import ProducerState

THRESHOLDS_KEY = "alert_thresholds"
RAN_THROUGH_APP_KEY = "ran_through_app"
ERROR_CHARS = 600  # of a worker's last error in the banner; the monitoring page's table has it whole
THREAD_NAMES = {"cluster-monitor": "cluster monitor", "results-feed": "live results feed"}
PIPELINE_BADGES = {  # label, icon, colour
    PipelineState.CRASH_LOOPING: ("Pipeline crash-looping", ":material/sync_problem:", "red"),
    PipelineState.RESTARTING: ("Pipeline restarting", ":material/restart_alt:", "orange"),
    PipelineState.STOPPED: ("Pipeline stopped", ":material/stop_circle:", "red"),
    PipelineState.NOT_RUNNING: ("Pipeline not running", ":material/error:", "red"),
}


def run_through_app() -> None:
    """Call first on every page: make sure a visitor's first page runs inside app.py's navigation.

    Until a server has run app.py once, Streamlit treats ``pages/`` as an old-style pages folder: a deep
    link (``/producer``) opened first runs the page file alone, without app.py (file names for page
    titles, no logging set-up, no producer autostart). app.py's ``st.navigation`` turns that mode off for
    the server; here we turn it off and rerun once per session, so the first visitor gets the real app at
    the same page. (Once per session: Streamlit's AppTest resets the mode before every run.)

    Streamlit offers no public handle on that mode: this is the app's one use of ``PagesManager.uses_pages_directory``
    (streamlit 1.67.0); tests/dashboard/test_run_through_app.py breaks if an upgrade changes it.
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


def ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)  # another host's clock may run a little ahead
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 5400 else f"{seconds / 3600:.0f} h ago"


def clock(at: float) -> str:
    return datetime.fromtimestamp(at, charts.local_timezone()).strftime("%H:%M:%S")


def literal(text: str) -> str:
    """``text`` as a Markdown code span: shown exactly, whatever Markdown, HTML or Streamlit directives it holds.

    For names from the settings (topics, groups, brokers) inside a sentence; anything a user or a message
    supplied goes through st.text or a table instead.
    """
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def data_age(snapshot: ClusterSnapshot, now: float) -> str:
    """How old the cluster data on screen is, in words."""
    if snapshot.last_success_at is None:
        return "No data from Kafka yet: it has not answered since the dashboard started."
    return f"Data from {clock(snapshot.last_success_at)}, {ago(now - snapshot.last_success_at)}."


def worker_text(item: TroubledWorker, window_seconds: float, now: float) -> str:
    """Everything a supervisor said about one worker in trouble, as plain text (it may quote a message)."""
    worker, supervisor = item.worker, item.supervisor
    state = "crash-looping" if worker.state is WorkerState.CRASH_LOOPING else "restarting"
    lines = [
        f"{worker.role} worker {worker.slot} on {supervisor.host} (supervisor pid {supervisor.pid}): {state}, "
        f"{worker.restarts} restart{'s' * (worker.restarts != 1)} in the last {window_seconds / 60:g} min "
        f"({worker.restarts_total} since the supervisor started)"
    ]
    if worker.last_exit:
        when = f", {ago(now - worker.last_error_at)}" if worker.last_error_at else ""
        lines.append(f"Last exit: {worker.last_exit}{when}")
    if worker.last_error:
        lines.append(f"Last error: {worker.last_error[:ERROR_CHARS]}{'…' * (len(worker.last_error) > ERROR_CHARS)}")
    if worker.stuck_at:
        lines.append(f"Stuck at: {worker.stuck_at}")
    if worker.careful:
        lines.append("Careful mode: scoring one message per checkpoint to isolate the one that crashes it")
    if worker.poisoned:
        lines.append(f"Set aside as poison_message so far: {worker.poisoned}")
    return "\n".join(lines)


def _badges(
    snapshot: ClusterSnapshot, threads: list[ThreadHealth], producer: ProducerState, last_result_at: float | None
) -> None:
    if not snapshot.kafka_ok:
        st.badge(
            "Kafka unreachable" if snapshot.error else "Kafka: connecting",
            icon=":material/error:",
            color="red" if snapshot.error else "gray",
        )
    else:
        brokers = len(snapshot.cluster.brokers)
        st.badge(f"Kafka: {brokers} broker{'s' * (brokers != 1)}", icon=":material/check_circle:", color="green")
    pipeline = snapshot.pipeline if snapshot.kafka_ok else None
    if pipeline is None:
        st.badge("Pipeline: unknown", icon=":material/help:", color="gray")
    elif pipeline.state is PipelineState.RUNNING:
        st.badge(
            f"Pipeline: {pipeline.workers} worker{'s' * (pipeline.workers != 1)}",
            icon=":material/check_circle:",
            color="green",
        )
    else:
        label, icon, color = PIPELINE_BADGES[pipeline.state]
        st.badge(label, icon=icon, color=color)
    if producer.running and producer.stats is not None:
        st.badge(f"Producer: {producer.stats.rate:.0f} posts/s", icon=":material/play_circle:", color="blue")
    else:
        st.badge("Producer stopped", icon=":material/stop_circle:", color="gray")
    if last_result_at is not None:
        st.badge(f"Last result {ago(time.time() - last_result_at)}", icon=":material/schedule:", color="gray")
    for thread in threads:
        if thread.failing:
            st.badge(
                f"{THREAD_NAMES[thread.name].capitalize()} restarting", icon=":material/restart_alt:", color="orange"
            )


def _pipeline_banner(pipeline: PipelineHealth, settings: Settings, now: float) -> None:
    start_hint = "Posts wait in Kafka until it starts (python -m pipeline)."
    if pipeline.state is PipelineState.CRASH_LOOPING:
        st.error(
            "The pipeline is crash-looping: a worker keeps failing and its supervisor keeps restarting it. "
            "Posts wait in Kafka meanwhile.",
            icon=":material/sync_problem:",
        )
    elif pipeline.state is PipelineState.RESTARTING:
        st.warning("A pipeline worker stopped and its supervisor is starting it again.", icon=":material/restart_alt:")
    elif pipeline.state is PipelineState.STOPPED:
        last = pipeline.supervisors[0] if pipeline.supervisors else None
        when = f" {ago(now - last.sent_at)}" if last is not None else ""
        lingering = (
            f" Kafka lists {pipeline.lingering} of its workers in the group until their session times out."
            if pipeline.lingering
            else ""
        )
        st.warning(f"The pipeline was stopped{when}.{lingering} {start_hint}", icon=":material/stop_circle:")
    elif pipeline.state is PipelineState.NOT_RUNNING:
        st.warning(
            f"The pipeline is not running: no worker in consumer group {literal(settings.consumer_group)} and no "
            f"supervisor reporting. {start_hint}",
            icon=":material/pause_circle:",
        )
        if pipeline.supervisors:
            st.text(
                f"Its supervisor last reported {ago(now - pipeline.supervisors[0].sent_at)} and did not say "
                "it was stopping: it was killed, or its host is down."
            )
    for item in pipeline.troubled:
        with st.container(border=True):
            st.text(worker_text(item, settings.crash_loop_window_seconds, now))


def _thread_banners(threads: list[ThreadHealth], now: float) -> None:
    for thread in threads:
        if thread.failing:
            success = (
                f"last worked {ago(now - thread.last_success_at)}" if thread.last_success_at else "has not worked yet"
            )
            st.warning(
                f"The dashboard's {THREAD_NAMES[thread.name]} hit an unexpected error; it starts again by itself "
                f"({thread.restarts} restart{'s' * (thread.restarts != 1)} so far, {success}).",
                icon=":material/restart_alt:",
            )
            st.text(f"Last error: {thread.last_error}")


@st.fragment(run_every=5)
def status_bar() -> None:
    """Badges for each moving part, banners when one is down, and the alerts; refreshes itself.

    It reads the cluster monitor's snapshot and the feed's state only: it never waits on Kafka.
    """
    settings = resources.settings()
    monitor = resources.cluster_monitor()
    snapshot = monitor.snapshot()
    feed = resources.results_feed()
    feed_status = feed.status()
    threads = [monitor.thread_health(), feed_status.thread]
    now = time.time()

    with st.container(horizontal=True, key="status-bar"):
        _badges(snapshot, threads, resources.producer_holder().state(), feed_status.last_result_at)

    if snapshot.taken_at is None:
        st.info(f"Connecting to Kafka at {literal(settings.brokers)}…", icon=":material/sync:")
    elif snapshot.error is not None:
        st.error(
            f"Kafka is unreachable at {literal(settings.brokers)}. The dashboard retries by itself and recovers when "
            "it is back.",
            icon=":material/cloud_off:",
        )
        st.text(f"{data_age(snapshot, now)}\nLast error: {snapshot.error}")
    else:
        _pipeline_banner(snapshot.pipeline, settings, now)
        if not feed_status.connected:
            st.info("The live results feed is connecting to the results topic…", icon=":material/sync:")
    _thread_banners(threads, now)

    limits = thresholds()
    lag = snapshot.pipeline_group.total_lag if snapshot.kafka_ok and snapshot.pipeline_group else None
    for alert in evaluate(feed.snapshot(limits.window_seconds).series, now, lag, limits):
        st.error(f"**{alert.title}** — {alert.detail}", icon=":material/notifications_active:")
