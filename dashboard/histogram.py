"""Fixed-bin histograms for latency and confidence, and percentiles read back from them.

Per-second histograms add up exactly, so any time range's percentiles come from summing bins
instead of keeping every sample: memory stays bounded however many results arrive.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

# Latency bins: [0, 1 ms), then geometric steps of ~17 % up to 1 h, then [1 h, inf).
LATENCY_EDGES: tuple[float, ...] = tuple(float(edge) for edge in np.geomspace(0.001, 3600.0, num=96))
LATENCY_BINS = len(LATENCY_EDGES) + 1
CONFIDENCE_BINS = 20


def latency_bin(seconds: float) -> int:
    return bisect_right(LATENCY_EDGES, seconds)


def confidence_bin(score: float) -> int:
    return min(max(int(score * CONFIDENCE_BINS), 0), CONFIDENCE_BINS - 1)


def latency_percentile(counts: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (0-100) of the latencies counted in ``counts``; None when empty.

    Interpolates inside the bin that holds it (geometrically: the bins are geometric); the open
    last bin answers its lower edge.
    """
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    cumulative = np.cumsum(np.asarray(counts, dtype=float))
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        return None
    rank = q / 100 * total
    index = int(np.searchsorted(cumulative, rank, side="left"))
    index = min(index, len(cumulative) - 1)
    while cumulative[index] - (cumulative[index - 1] if index else 0.0) == 0:  # rank 0 lands on empty bins
        index += 1
    below = cumulative[index - 1] if index else 0.0
    fraction = (rank - below) / (cumulative[index] - below)
    if index == 0:
        return fraction * LATENCY_EDGES[0]
    if index >= len(LATENCY_EDGES):
        return LATENCY_EDGES[-1]
    lower, upper = LATENCY_EDGES[index - 1], LATENCY_EDGES[index]
    return lower * math.pow(upper / lower, fraction)


def format_latency(seconds: float | None) -> str:
    """A latency for people: ms below a second, s below a minute, min below the histogram's open last bin."""
    if seconds is None:
        return "–"
    if seconds >= LATENCY_EDGES[-1]:
        return "> 1 h"  # the open last bin: only a lower bound is known
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"
