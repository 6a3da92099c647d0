"""Live sentiment: headline numbers, charts and the latest posts, refreshed every two seconds."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pandas as pd
import streamlit as st

from common.contract import LABELS
from dashboard import charts, resources, widgets
from dashboard.histogram import format_latency, latency_percentile
from dashboard.results_feed import LiveSnapshot

logger = logging.getLogger(__name__)

widgets.run_through_app()

RANGES = {"1 min": 60, "5 min": 300, "15 min": 900, "1 h": 3600, "6 h": 21600}

settings = resources.settings()
feed = resources.results_feed()
history = settings.dashboard_history_minutes * 60
ranges = {name: seconds for name, seconds in RANGES.items() if seconds <= max(history, 60)}

widgets.status_bar()
st.title("Live sentiment")
sources, authors = feed.choices()
with st.container(horizontal=True, vertical_alignment="bottom"):
    range_name = st.segmented_control(
        "Time range",
        list(ranges),
        default="5 min" if "5 min" in ranges else next(iter(ranges)),
        required=True,
        key="live-range",
    )
    chosen_sources = st.multiselect("Sources", sources, placeholder="All sources", key="live-sources", width=320)
    chosen_authors = st.multiselect(
        "Authors", authors, placeholder="All authors", accept_new_options=True, key="live-authors", width=320
    )

with st.sidebar.expander("Alert thresholds", icon=":material/notifications:"):
    limits = widgets.thresholds()
    st.session_state[widgets.THRESHOLDS_KEY] = replace(
        limits,
        negative_share=st.slider("Negative share above (%)", 5, 100, round(limits.negative_share * 100), 5) / 100,
        window_seconds=60 * st.select_slider("over the last (min)", [1, 2, 5, 10, 15], limits.window_seconds // 60),
        min_posts=st.number_input("with at least (posts)", 1, 100_000, limits.min_posts),
        max_lag=st.number_input("Consumer lag above (posts)", 1, 10_000_000, limits.max_lag, step=100),
    )


def headline(snapshot: LiveSnapshot, frame: pd.DataFrame) -> None:
    series = snapshot.series
    totals = series.label_counts.sum(axis=0)
    share = totals / max(series.total, 1)
    latency_hist = series.latency_hists.sum(axis=0)
    recent_rate = frame["rate"].iloc[-6:-1].mean() if len(frame) > 1 else 0.0
    with st.container(horizontal=True):
        st.metric("Posts", f"{series.total:,}", border=True)
        st.metric("Throughput", f"{recent_rate:.1f}/s", border=True)
        for label, value in zip(LABELS, share, strict=True):
            st.metric(f":{charts.LABEL_MARKDOWN_COLORS[label]}[{label.capitalize()}]", f"{value:.0%}", border=True)
        mean = series.polarity_sums.sum() / series.total
        st.metric("Mean sentiment", f"{mean:+.2f}", border=True)
        for q in charts.PERCENTILES:
            st.metric(f"Latency p{q}", format_latency(latency_percentile(latency_hist, q)), border=True)


def models_table(snapshot: LiveSnapshot) -> None:
    """Which models (and versions) scored the posts in view: during a rollout, more than one."""
    counts = snapshot.models
    if not counts:
        return
    total = sum(counts.values())
    # Model names come from the results (Kafka data): a table shows them as text.
    table = pd.DataFrame(
        [
            {"model": model or "(not named)", "version": version or "–", "posts": posts, "share": posts / total}
            for (model, version), posts in counts.most_common()
        ]
    )
    st.caption(
        "Scored by"
        + (" (from the most recent results held in memory)" if snapshot.author_filtered else "")
        + f": {len(table)} model{'s' * (len(table) != 1)}"
    )
    st.dataframe(
        table,
        hide_index=True,
        width=760,
        key="live-models",
        column_config={
            "model": st.column_config.TextColumn("Model", width="medium"),
            "version": st.column_config.TextColumn("Version", width="small"),
            "posts": st.column_config.NumberColumn("Posts", format="%d", width="small"),
            "share": st.column_config.ProgressColumn(
                "Share", min_value=0.0, max_value=1.0, format="percent", width="small"
            ),
        },
    )


def latest_table(snapshot: LiveSnapshot) -> None:
    # User text goes through st.dataframe only: rendered as text, never as markdown or HTML.
    table = pd.DataFrame(
        {
            "time": pd.to_datetime([r.available_at for r in snapshot.latest], unit="s", utc=True).tz_convert(
                charts.local_timezone()
            ),
            "label": [[r.label] for r in snapshot.latest],  # a one-pill list: coloured by its column
            "confidence": [r.score for r in snapshot.latest],
            "source": [r.source for r in snapshot.latest],
            "author": [r.author for r in snapshot.latest],
            "text": [r.text for r in snapshot.latest],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        height=420,
        column_config={
            "time": st.column_config.DatetimeColumn("Time", format="HH:mm:ss", width="small"),
            "label": charts.label_column("Label"),
            "confidence": st.column_config.ProgressColumn(
                "Confidence", min_value=0.0, max_value=1.0, format="%.2f", width="small"
            ),
            "source": st.column_config.TextColumn("Source", width="small"),
            "author": st.column_config.TextColumn("Author", width="small"),
            "text": st.column_config.TextColumn("Text", width="large"),
        },
        key="latest-posts",
    )


@st.fragment(run_every=2)
def live_view(window: int, sources: list[str], authors: list[str]) -> None:
    started = time.perf_counter()
    snapshot = feed.snapshot(window, sources or None, authors or None)
    if snapshot.series.total == 0:
        st.info(
            f"No results in the last {range_name}{' for these filters' if sources or authors else ''} yet. "
            + widgets.no_results_hint(
                resources.cluster_monitor().snapshot().pipeline, resources.producer_holder().state().running
            ),
            icon=":material/hourglass_empty:",
        )
        return
    frame = charts.resample(snapshot.series, snapshot.since, snapshot.now, charts.step_seconds(window))
    headline(snapshot, frame)
    if snapshot.author_filtered:
        st.caption("Author filter: computed from the most recent results held in memory.")
    models_table(snapshot)
    left, middle, right = st.columns(3)
    left.plotly_chart(charts.label_share(frame), key="chart-share", theme=None)
    middle.plotly_chart(charts.mean_score(frame), key="chart-mean", theme=None)
    right.plotly_chart(charts.label_counts(snapshot.series), key="chart-counts", theme=None)
    left.plotly_chart(charts.throughput(frame), key="chart-throughput", theme=None)
    middle.plotly_chart(charts.latency(frame), key="chart-latency", theme=None)
    right.plotly_chart(charts.confidence_histogram(snapshot.series), key="chart-confidence", theme=None)
    st.subheader("Latest posts")
    latest_table(snapshot)
    logger.debug("Live view rendered in %.0f ms", (time.perf_counter() - started) * 1000)


live_view(ranges[range_name], chosen_sources, chosen_authors)
