"""Alert thresholds and their evaluation: negative share over a window, and consumer lag."""

from __future__ import annotations

from dataclasses import dataclass

from common.contract import LABELS
from dashboard.buckets import BucketSeries

NEGATIVE = LABELS.index("NEGATIVE")


@dataclass(frozen=True)
class Thresholds:
    negative_share: float = 0.5  # alert when more than this share of the window's posts is negative
    window_seconds: int = 300
    min_posts: int = 20  # below this a share says nothing
    max_lag: int = 1000  # posts waiting for the pipeline


@dataclass(frozen=True)
class Alert:
    title: str
    detail: str


def negative_share(series: BucketSeries, since: float) -> tuple[float | None, int]:
    """Share of negative results among those from ``since``, and how many there were."""
    recent = series.label_counts[series.seconds >= int(since)]
    total = int(recent.sum())
    return (float(recent[:, NEGATIVE].sum()) / total if total else None), total


def evaluate(series: BucketSeries, now: float, lag: int | None, thresholds: Thresholds) -> list[Alert]:
    alerts = []
    share, count = negative_share(series, now - thresholds.window_seconds)
    if share is not None and count >= thresholds.min_posts and share > thresholds.negative_share:
        alerts.append(
            Alert(
                "Negative sentiment is high",
                f"{share:.0%} of the last {count:,} posts ({thresholds.window_seconds // 60} min) are negative; "
                f"threshold {thresholds.negative_share:.0%}.",
            )
        )
    if lag is not None and lag > thresholds.max_lag:
        alerts.append(
            Alert(
                "The pipeline is falling behind",
                f"{lag:,} posts wait to be classified; threshold {thresholds.max_lag:,}.",
            )
        )
    return alerts
