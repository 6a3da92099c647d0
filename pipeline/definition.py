"""What happens to a message, kept apart from the wiring so tests can drive it.

Raw posts are validated one by one; good posts go to the batching classifier sink, bad ones to the
dead-letter topic with a reason. Results feed per-source, event-time windowed statistics.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.sinks import BaseSink

from common.contract import InvalidPost, Post, RejectReason, SentimentStats, dead_letter_for, decode_post


def check_post(raw: bytes | None, key: bytes | None, max_text_chars: int) -> Post | dict[str, Any]:
    """A valid :class:`Post`, or the dead letter (as a dict) that explains why it is not one."""
    try:
        post = decode_post(raw, max_text_chars)
        if not key:
            raise InvalidPost(RejectReason.MISSING_KEY, "message has no key (posts must be keyed by author)")
        return post
    except InvalidPost as error:
        context = message_context()
        return dead_letter_for(error, raw, key, context.topic, context.partition, context.offset).model_dump(mode="json")


def define_classification(
    sdf: StreamingDataFrame, classifier_sink: BaseSink, dead_letters: Topic, max_text_chars: int
) -> StreamingDataFrame:
    checked = sdf.apply(lambda raw, key, _ts, _headers: check_post(raw, key, max_text_chars), metadata=True)
    checked.filter(lambda value: isinstance(value, dict)).to_topic(dead_letters)
    checked.filter(lambda value: isinstance(value, Post)).sink(classifier_sink)
    return sdf


def _start_window(result: dict[str, Any]) -> dict[str, Any]:
    return {"count": 1, "labels": {result["label"]: 1}, "score_sum": result["score"]}


def _add_to_window(window: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    window["count"] += 1
    window["labels"][result["label"]] = window["labels"].get(result["label"], 0) + 1
    window["score_sum"] += result["score"]
    return window


def _to_stats(window: dict[str, Any], source: str) -> dict[str, Any]:
    value = window["value"]
    return SentimentStats(
        source=source,
        window_start=window["start"] / 1000,
        window_end=window["end"] / 1000,
        count=value["count"],
        label_counts=value["labels"],
        mean_score=value["score_sum"] / value["count"],
    ).model_dump(mode="json")


def define_statistics(sdf: StreamingDataFrame, stats: Topic, window_seconds: int, grace_seconds: int) -> StreamingDataFrame:
    """Per source and event-time window: count per label and mean confidence, emitted when the window closes."""
    by_source = sdf.group_by(lambda result: result["source"], name="source")
    windows = (
        by_source.tumbling_window(timedelta(seconds=window_seconds), grace_ms=timedelta(seconds=grace_seconds))
        .reduce(reducer=_add_to_window, initializer=_start_window)
        .final()
    )
    windows.apply(lambda window, key, _ts, _headers: _to_stats(window, key), metadata=True).to_topic(stats)
    return sdf
