"""Streamlit pieces every page shares: the status bar (Kafka, pipeline, model, producer, feed), banners and alerts."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from common.contract import WorkerState
from common.settings import Settings
from dashboard import charts, models, resources
from dashboard.alerts import Thresholds, evaluate
from dashboard.background import ThreadHealth
from dashboard.cluster_monitor import ClusterSnapshot
from dashboard.pipeline_health import PipelineHealth, PipelineState, TroubledWorker
from dashboard.producer_control import ProducerState
from sentiment_model import registry
from sentiment_model.registry import BuildProgress, BuiltModel

THRESHOLDS_KEY = "alert_thresholds"
RAN_THROUGH_APP_KEY = "ran_through_app"
ERROR_CHARS = 600  # of a worker's last error in the banner; the monitoring page's table has it whole
THREAD_NAMES = {"cluster-monitor": "cluster monitor", "results-feed": "live results feed"}
PIPELINE_BADGES = {  # label, icon, colour
    PipelineState.WAITING_FOR_MODEL: ("Pipeline waiting for a model", ":material/hourglass_top:", "orange"),
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


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")  # a model name fit for a badge (which is Markdown)


def _model_badge(pipeline: PipelineHealth, built: list[BuiltModel]) -> None:
    """The model the live pipeline serves, when it serves one: named if this app knows it."""
    served = pipeline.served_models
    if not served:
        return
    known = [models.find_built(model, built) for model in served]
    # A model this app has not built is named by its file (a pretrained name has no suffix: it stays whole).
    names = [model.name if model is not None else Path(name).stem for model, name in zip(known, served, strict=True)]
    shown = ", ".join(name if SAFE_NAME.fullmatch(name) else "a model" for name in names)
    quick = any(model is not None and models.is_quick(model) for model in known)
    st.badge(
        f"Model: {shown}{' (quick, less accurate)' if quick else ''}",
        icon=":material/model_training:",
        color="orange" if quick else "blue",
    )


def _badges(
    snapshot: ClusterSnapshot,
    threads: list[ThreadHealth],
    producer: ProducerState,
    last_result_at: float | None,
    built: list[BuiltModel],
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
    if pipeline is not None:
        _model_badge(pipeline, built)
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


def waiting_posts(lag: int | None) -> str:
    if lag is None:
        return "Posts wait in Kafka"
    return f"{lag:,} post{'s' * (lag != 1)} {'are' if lag != 1 else 'is'} waiting in Kafka"


def no_results_hint(pipeline: PipelineHealth | None, producer_running: bool) -> str:
    """What to do (or wait for) when no result is in view: never "start the producer" to someone whose producer
    runs and whose posts wait for a model."""
    if pipeline is not None and pipeline.waiting_for_model:
        return "The pipeline is waiting for a model (see above): results appear here as soon as it is ready."
    if producer_running:
        return "The producer is running: results appear here within seconds of being scored."
    return "Start the producer (Producer page) or send a text (Analyze text page); results appear here within seconds."


def _pipeline_banner(pipeline: PipelineHealth, settings: Settings, now: float, lag: int | None) -> None:
    start_hint = "Posts wait in Kafka until it starts (python -m pipeline)."
    if pipeline.state is PipelineState.WAITING_FOR_MODEL:
        st.info(
            f"The pipeline is waiting for a model. {waiting_posts(lag)} and will be scored as soon as the model is "
            "ready.",
            icon=":material/hourglass_top:",
        )
        st.text("Waiting for a model: " + "; ".join(dict.fromkeys(pipeline.waiting_for_model)))
    elif pipeline.state is PipelineState.CRASH_LOOPING:
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


def _build_banners(building: list[BuildProgress]) -> None:
    """One banner per model build that runs now (``registry.read_progress``), with its progress bar."""
    for progress in building:
        with st.container(key=f"build-banner-{progress.name}"):
            st.info(models.banner_text(progress), icon=":material/model_training:")
            details = [
                f"epoch {progress.epoch}/{progress.epochs}" if progress.epoch is not None and progress.epochs else "",
                f"loss {progress.loss:.4f}" if progress.loss is not None else "",
                f"dev macro-F1 {progress.dev_macro_f1:.3f}" if progress.dev_macro_f1 is not None else "",
            ]
            st.progress(
                min(max(progress.percent / 100, 0.0), 1.0),
                text=", ".join(detail for detail in details if detail) or None,
            )


def _quick_model_banner(pipeline: PipelineHealth, built: list[BuiltModel], building: list[BuildProgress]) -> None:
    """Say so when the quick model is what the pipeline serves: no one must take its figures for the full one's."""
    quick = [
        model
        for served in pipeline.served_models
        if (model := models.find_built(served, built)) is not None and models.is_quick(model)
    ]
    if not quick:
        return
    model = quick[0]
    f1 = models.macro_f1(model)
    full = models.full_model(built)
    full_f1 = models.macro_f1(full) if full is not None else None
    comparison = f" (the full model: {full_f1:.3f})" if full_f1 is not None else ""
    building_full = any(models.build_kind(progress) == "full" for progress in building)
    st.warning(
        f"Sentiment is scored by the **quick model** {literal(model.name)}: held-out macro-F1 "
        f"{f'{f1:.3f}' if f1 is not None else 'not measured'}{comparison}, less accurate than the full model."
        + (" The full model is being built." if building_full else ""),
        icon=":material/speed:",
    )


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
    lag = snapshot.pipeline_group.total_lag if snapshot.kafka_ok and snapshot.pipeline_group else None
    feed = resources.results_feed()
    feed_status = feed.status()
    threads = [monitor.thread_health(), feed_status.thread]
    now = time.time()
    built = registry.built_models(settings.models_dir)
    building = models.live_builds(settings.models_dir)

    with st.container(horizontal=True, key="status-bar"):
        _badges(snapshot, threads, resources.producer_holder().state(), feed_status.last_result_at, built)

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
        _pipeline_banner(snapshot.pipeline, settings, now, lag)
        _quick_model_banner(snapshot.pipeline, built, building)
        if not feed_status.connected:
            st.info("The live results feed is connecting to the results topic…", icon=":material/sync:")
    _build_banners(building)
    _thread_banners(threads, now)

    limits = thresholds()
    for alert in evaluate(feed.snapshot(limits.window_seconds).series, now, lag, limits):
        st.error(f"**{alert.title}** — {alert.detail}", icon=":material/notifications_active:")
