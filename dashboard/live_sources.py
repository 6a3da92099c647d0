"""What the live sources say about themselves on the source status topic: connected, retrying, stopped, or stale.

Each live source (and the webhook) writes a ``SourceStatus`` to the compacted status topic every
``interval_seconds`` and at each change of state, keyed by its name. The cluster monitor's thread feeds those
records to :class:`SourceStatuses`; a page turns the latest into a table with :func:`sources_table`. A source
whose status is older than GONE_AFTER_INTERVALS intervals without having said it stopped is stale: killed, or cut
off from Kafka. Anyone can write to the topic: what does not parse is ignored, and every string is shown as text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import pandas as pd
from pydantic import ValidationError

from common.contract import SourceState, SourceStatus
from dashboard.pipeline_health import GONE_AFTER_INTERVALS

logger = logging.getLogger(__name__)

MAX_SOURCES = 100  # remembered; the oldest reported is forgotten first
STALE = "stale"


class SourceStatuses:
    """The latest valid status of each source, fed the status topic's records in order."""

    def __init__(self) -> None:
        self._latest: dict[str, SourceStatus] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: compaction's way of forgetting that source
            if key is not None:
                self._latest.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            status = SourceStatus.model_validate_json(value)
        except ValidationError as exc:
            logger.debug("Ignoring a record on the source status topic that is not a SourceStatus: %s", exc)
            return
        self._latest[status.name] = status
        if len(self._latest) > MAX_SOURCES:
            oldest = min(self._latest.values(), key=lambda known: known.sent_at)
            del self._latest[oldest.name]

    def latest(self) -> tuple[SourceStatus, ...]:
        return tuple(sorted(self._latest.values(), key=lambda status: status.name))


def is_stale(status: SourceStatus, now: float) -> bool:
    """It has not reported for GONE_AFTER_INTERVALS intervals and did not say it stopped."""
    return status.state is not SourceState.STOPPED and now - status.sent_at > GONE_AFTER_INTERVALS * max(
        status.interval_seconds, 0.1
    )


def shown_state(status: SourceStatus, now: float) -> str:
    return STALE if is_stale(status, now) else status.state.value


def state_text(status: SourceStatus, now: float) -> str:
    """The state in words; a retrying source's attempt and when it tries again."""
    state = shown_state(status, now)
    if state == STALE:
        return "stale: no status for over " + format(GONE_AFTER_INTERVALS * status.interval_seconds, "g") + " s"
    if status.state is SourceState.RETRYING:
        attempt = f"attempt {status.failures}" if status.failures else "retrying"
        if status.retry_at is None:
            return f"retrying ({attempt})"
        wait = status.retry_at - now
        return f"retrying ({attempt}, next {'in ' + format(wait, '.0f') + ' s' if wait > 0 else 'now'})"
    return state


def skipped_text(skipped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in sorted(skipped.items(), key=lambda item: -item[1]))


def sources_table(
    statuses: Iterable[SourceStatus], now: float, clock: Callable[[float], str], ago: Callable[[float], str]
) -> pd.DataFrame:
    """One row per source, live ones first; the strings are the sources' own, for a table (shown as text).

    ``clock`` formats an epoch time as the viewer's time of day, ``ago`` a number of seconds in the past.
    """
    order = {SourceState.CONNECTED.value: 0, SourceState.STARTING.value: 1, SourceState.RETRYING.value: 2, STALE: 3}
    rows = sorted(statuses, key=lambda status: (order.get(shown_state(status, now), 4), status.name))
    return pd.DataFrame(
        [
            {
                "source": status.name,
                "network": status.network,
                "state": state_text(status, now),
                "posts": status.posts,
                "posts/s": status.posts_per_second,
                "duplicates": status.duplicates,
                "skipped": skipped_text(status.skipped),
                "bad frames": status.bad_frames,
                "last post": f"{clock(status.last_post_at)} ({ago(now - status.last_post_at)})"
                if status.last_post_at
                else "",
                "last error": status.last_error or "",
                "following": status.detail,
                "reported": ago(now - status.sent_at),
            }
            for status in rows
        ],
        columns=[
            "source",
            "network",
            "state",
            "posts",
            "posts/s",
            "duplicates",
            "skipped",
            "bad frames",
            "last post",
            "last error",
            "following",
            "reported",
        ],
    )
