"""Plotly figures of a live snapshot, in the dashboard's consistent colours and dark wall-screen style."""

from __future__ import annotations

from datetime import datetime, tzinfo

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from common.contract import LABELS
from dashboard.buckets import BucketSeries
from dashboard.histogram import CONFIDENCE_BINS, latency_percentile

LABEL_COLORS = {"POSITIVE": "#2ecc71", "NEUTRAL": "#95a5a6", "NEGATIVE": "#e74c3c"}
LABEL_MARKDOWN_COLORS = {"POSITIVE": "green", "NEUTRAL": "gray", "NEGATIVE": "red"}  # for st.metric
PERCENTILES = (50, 95, 99)
PERCENTILE_COLORS = {50: "#5dade2", 95: "#f5b041", 99: "#ec7063"}


def local_timezone() -> tzinfo | None:
    return datetime.now().astimezone().tzinfo


def step_seconds(window_seconds: float) -> int:
    """Chart resolution: about 60 to 120 points whatever the range."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300):
        if window_seconds / step <= 120:
            return step
    return 600


@np.errstate(invalid="ignore", divide="ignore")
def resample(series: BucketSeries, since: float, now: float, step: int) -> pd.DataFrame:
    """One row per ``step`` seconds from ``since`` to ``now`` (empty steps are zeros), indexed by local time.

    Columns: one count per label, ``total``, ``rate`` (posts/s), ``mean_polarity`` and p50/p95/p99 latency.
    """
    start = int(since) // step * step
    edges = np.arange(start, int(now) + 1, step)
    slots = (series.seconds - start) // step
    keep = (slots >= 0) & (slots < len(edges))
    counts = np.zeros((len(edges), len(LABELS)))
    polarity = np.zeros(len(edges))
    latency = np.zeros((len(edges), series.latency_hists.shape[1]))
    np.add.at(counts, slots[keep], series.label_counts[keep])
    np.add.at(polarity, slots[keep], series.polarity_sums[keep])
    np.add.at(latency, slots[keep], series.latency_hists[keep])
    total = counts.sum(axis=1)
    frame = pd.DataFrame(counts, columns=list(LABELS))
    frame["total"] = total
    frame["rate"] = total / step
    frame["mean_polarity"] = np.where(total > 0, polarity / total, np.nan)
    for q in PERCENTILES:
        frame[f"p{q}"] = [latency_percentile(row, q) if row.any() else None for row in latency]
    frame.index = pd.to_datetime(edges, unit="s", utc=True).tz_convert(local_timezone())
    return frame


def coloured(label: str) -> str:
    """Markdown of a model label (never of user text) in its colour, for st.metric."""
    return f":{LABEL_MARKDOWN_COLORS[label]}[{label}]" if label in LABEL_MARKDOWN_COLORS else label


def label_column(title: str) -> st.column_config.Column:
    """A table column of one-element label lists, shown as pills in the label colours."""
    return st.column_config.MultiselectColumn(
        title, options=list(LABELS), color=[LABEL_COLORS[label] for label in LABELS], width="small"
    )


def _style(figure: go.Figure, title: str, height: int = 300) -> go.Figure:
    figure.update_layout(
        title={"text": title, "font": {"size": 16}},
        template="plotly_dark",
        height=height,
        margin={"l": 10, "r": 10, "t": 45, "b": 10},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
    )
    return figure


def label_share(frame: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    shares = frame[list(LABELS)].div(frame["total"].where(frame["total"] > 0), axis=0) * 100
    for label in LABELS:
        figure.add_trace(
            go.Scatter(
                x=frame.index,
                y=shares[label],
                name=label,
                stackgroup="share",
                mode="lines",
                line={"width": 0.5, "color": LABEL_COLORS[label]},
                hovertemplate="%{y:.0f}%",
            )
        )
    figure.update_yaxes(range=[0, 100], ticksuffix="%")
    return _style(figure, "Label share over time")


def mean_score(frame: pd.DataFrame, rolling_steps: int = 6) -> go.Figure:
    weighted = (frame["mean_polarity"].fillna(0) * frame["total"]).rolling(rolling_steps, min_periods=1).sum()
    counts = frame["total"].rolling(rolling_steps, min_periods=1).sum()
    rolling = weighted / counts.where(counts > 0)
    figure = go.Figure(
        go.Scatter(
            x=frame.index,
            y=rolling,
            mode="lines",
            name="rolling mean",
            line={"color": "#f4d03f", "width": 3},
            connectgaps=False,
        )
    )
    figure.add_hline(y=0, line={"color": "#7f8c8d", "dash": "dot"})
    figure.update_yaxes(range=[-1, 1], tickvals=[-1, -0.5, 0, 0.5, 1])
    return _style(figure, "Mean sentiment (−1 negative … +1 positive), rolling")


def label_counts(series: BucketSeries) -> go.Figure:
    totals = series.label_counts.sum(axis=0)
    figure = go.Figure(
        go.Bar(
            x=list(LABELS),
            y=totals,
            marker_color=[LABEL_COLORS[label] for label in LABELS],
            text=[f"{int(value):,}" for value in totals],
            textposition="auto",
        )
    )
    return _style(figure, "Posts per label")


def confidence_histogram(series: BucketSeries) -> go.Figure:
    width = 1 / CONFIDENCE_BINS
    centres = np.arange(CONFIDENCE_BINS) * width + width / 2
    figure = go.Figure(go.Bar(x=centres, y=series.confidence_hist, width=width * 0.95, marker_color="#5dade2"))
    figure.update_xaxes(range=[0, 1], title="confidence")
    return _style(figure, "Confidence")


def throughput(frame: pd.DataFrame) -> go.Figure:
    figure = go.Figure(
        go.Scatter(
            x=frame.index,
            y=frame["rate"],
            mode="lines",
            fill="tozeroy",
            line={"color": "#48c9b0", "width": 2},
            name="posts/s",
        )
    )
    figure.update_yaxes(rangemode="tozero")
    return _style(figure, "Throughput (posts/s)")


def latency(frame: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for q in PERCENTILES:
        figure.add_trace(
            go.Scatter(
                x=frame.index,
                y=frame[f"p{q}"],
                mode="lines",
                name=f"p{q}",
                line={"color": PERCENTILE_COLORS[q], "width": 2},
            )
        )
    figure.update_yaxes(rangemode="tozero", ticksuffix=" s")
    return _style(figure, "End-to-end latency (s)")


def confusion_matrix(
    labels: list[str], rows: list[list[int]], title: str = "Confusion matrix (held-out test)"
) -> go.Figure:
    """A heatmap of counts, true labels down, predicted across; each cell shows its count and its share of the row."""
    counts = np.array(rows, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    figure = go.Figure(
        go.Heatmap(
            z=shares.tolist(),
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            showscale=False,
            text=[
                [f"{int(n):,}<br>{share:.0%}" for n, share in zip(row, share_row, strict=True)]
                for row, share_row in zip(counts, shares, strict=True)
            ],
            texttemplate="%{text}",
            textfont={"size": 14},
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        )
    )
    figure.update_xaxes(title="predicted", side="bottom")
    figure.update_yaxes(title="true", autorange="reversed")
    figure = _style(figure, title, height=320)
    figure.update_layout(hovermode="closest")
    return figure


def source_accuracy(frame: pd.DataFrame, title: str = "Accuracy by source (held-out test)") -> go.Figure:
    """Horizontal bars of accuracy per data source (``frame``: source, accuracy)."""
    figure = go.Figure(
        go.Bar(
            x=frame["accuracy"].tolist(),
            y=frame["source"].tolist(),
            orientation="h",
            marker_color="#5dade2",
            text=[f"{value:.1%}" for value in frame["accuracy"]],
            textposition="auto",
        )
    )
    figure.update_xaxes(range=[0, 1], tickformat=".0%", dtick=0.25)
    figure.update_yaxes(automargin=True)
    figure = _style(figure, title, height=max(200, 60 + 36 * len(frame)))
    figure.update_layout(hovermode="closest", margin={"r": 30})  # room for the last tick, 100%
    return figure
