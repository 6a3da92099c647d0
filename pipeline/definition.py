"""What happens to a message, kept apart from the wiring so tests can drive it.

Raw posts are checked one by one: a message set aside as poison is dead-lettered at once, a bad one is
dead-lettered with its specific reason, and a good one goes to the batching classifier sink. Results feed
per-source, event-time windowed statistics; anything on the results topic that is not a valid result is
dead-lettered there too, so no record from any producer can stop a worker.

A post needs no Kafka key: its result is keyed by the author its payload names (``encode_result``), and so is
its dead letter once it was read. Nothing downstream needs an author's posts in one raw partition (statistics
are per source and event time, the dashboard counts by post id), so the raw message is not re-keyed: no
repartition topic, every dead letter names the raw message itself, and each raw post still ends as one result
or one dead letter in the checkpoint that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.sinks import BaseSink

from common.contract import (
    InvalidPost,
    Post,
    RejectReason,
    SentimentStats,
    decode_post,
    language_supported,
)
from pipeline.outputs import Source
from pipeline.results_codec import InvalidResult, empty_result


@dataclass(frozen=True)
class Accepted:
    post: Post
    source: Source


@dataclass(frozen=True)
class Rejected:
    reason: RejectReason
    detail: str
    source: Source


class Gate(Protocol):
    """Decides, before anything else, whether a message may be processed at all (see ``pipeline.poison``)."""

    def check(self, source: Source) -> Rejected | None: ...


class DeadLetters(Protocol):
    def dead_letter(self, reason: RejectReason, detail: str, source: Source) -> None: ...


def current_source(raw: bytes | None, key: bytes | None) -> Source:
    context = message_context()
    return Source(raw, key, context.topic, context.partition, context.offset)


@dataclass(frozen=True)
class PostRules:
    """What the pipeline asks of a post beyond the contract: a text it may score, in a language its model reads."""

    max_text_chars: int
    languages: frozenset[str]  # primary language subtags (SENTISTREAM_MODEL_LANGUAGES)


def check_post(source: Source, timestamp_ms: int, rules: PostRules) -> Accepted | Rejected:
    """A valid post, or why it is not one. ``timestamp_ms`` is the message's Kafka timestamp."""
    try:
        post = decode_post(source.raw, rules.max_text_chars, timestamp_ms)
    except InvalidPost as error:
        return Rejected(error.reason, error.detail, source)
    read = replace(source, author=post.author)
    if not language_supported(post.lang, rules.languages):
        return Rejected(
            RejectReason.UNSUPPORTED_LANGUAGE,
            f"the post's language is {post.lang!r}; the model reads only {', '.join(sorted(rules.languages))} "
            "(SENTISTREAM_MODEL_LANGUAGES)",
            read,
        )
    return Accepted(post, read)


def define_classification(
    sdf: StreamingDataFrame, classifier_sink: BaseSink, dead_letters: DeadLetters, gate: Gate, rules: PostRules
) -> StreamingDataFrame:
    def check(raw: bytes | None, key: bytes | None, timestamp: int, _headers: Any) -> Accepted | Rejected:
        source = current_source(raw, key)
        return gate.check(source) or check_post(source, timestamp, rules)

    checked = sdf.apply(check, metadata=True)
    checked.filter(lambda value: isinstance(value, Rejected)).update(
        lambda rejected: dead_letters.dead_letter(rejected.reason, rejected.detail, rejected.source)
    )
    checked.filter(lambda value: isinstance(value, Accepted)).sink(classifier_sink)
    return sdf


# --- statistics ---------------------------------------------------------------------------------


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


def reject_invalid_result(value: dict[str, Any] | InvalidResult | None, key: bytes | None) -> dict[str, Any] | Rejected:
    if isinstance(value, dict):
        return value
    invalid = value if isinstance(value, InvalidResult) else empty_result(None)  # None: Quix skips the deserializer
    return Rejected(RejectReason.INVALID_RESULT, invalid.detail, current_source(invalid.raw, key))


def define_statistics(
    sdf: StreamingDataFrame, stats: Topic, dead_letters: DeadLetters, window_seconds: int, grace_seconds: int
) -> StreamingDataFrame:
    """Per source and event-time window: count per label and mean confidence, emitted when the window closes.

    The results topic is read with ``pipeline.results_codec``, which never raises: what is not a valid
    result is dead-lettered here instead of windowed.
    """
    checked = sdf.apply(lambda value, key, _ts, _headers: reject_invalid_result(value, key), metadata=True)
    checked.filter(lambda value: isinstance(value, Rejected)).update(
        lambda rejected: dead_letters.dead_letter(rejected.reason, rejected.detail, rejected.source)
    )
    results = checked.filter(lambda value: isinstance(value, dict))
    by_source = results.group_by(lambda result: result["source"], name="source")
    windows = (
        by_source.tumbling_window(timedelta(seconds=window_seconds), grace_ms=timedelta(seconds=grace_seconds))
        .reduce(reducer=_add_to_window, initializer=_start_window)
        .final()
    )
    windows.apply(lambda window, key, _ts, _headers: _to_stats(window, key), metadata=True).to_topic(stats)
    return sdf
