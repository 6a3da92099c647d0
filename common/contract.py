"""The message contract: what travels on each topic, validated with pydantic, JSON on the wire.

Times are UNIX epoch seconds (float) so that latency is a subtraction and the wire stays small.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Final = 1
LABELS = ("POSITIVE", "NEUTRAL", "NEGATIVE")
Label = Literal["POSITIVE", "NEUTRAL", "NEGATIVE"]

# Deeper JSON than this is refused before pydantic sees it (a post is a flat object).
MAX_JSON_DEPTH = 32
# The latest creation time accepted, 9999-12-31T23:59:59Z: an infinite or later time has no datetime and no
# millisecond Kafka timestamp, and one such post used to crash the statistics worker at every restart.
MAX_CREATED_AT = 253402300799.0
# The earliest: one millisecond after the epoch. Anything smaller rounds to Kafka timestamp 0 or below.
MIN_CREATED_AT = 0.001
# A post's ``lang`` has the shape of a BCP-47 tag (RFC 5646): the primary language subtag, then subtags joined
# by hyphens; at most the 35 characters RFC 5646 (4.4.1) asks every implementation to hold.
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
LANGUAGE_TAG_MAX_CHARS = 35
# BCP-47's "undetermined": a source that tags a post so says it does not know the language.
UNDETERMINED_LANGUAGE = "und"
# Every message the pipeline writes must fit in one Kafka message: librdkafka refuses a key plus value over its
# message.max.bytes (1,000,000 by default) and a broker one over the topic's max.message.bytes. The pipeline
# writes to the smaller of the two, less this much for the record's own framing.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
MESSAGE_FRAMING_BYTES = 1024
# A dead letter keeps the original payload exactly up to this many bytes (less if the message limit needs it;
# ``payload_truncated``, ``payload_size`` and ``payload_sha256`` describe the whole), the key as text up to
# MAX_DEAD_LETTER_KEY characters, and a preview of PREVIEW_CHARS.
MAX_DEAD_LETTER_PAYLOAD = 256 * 1024
MAX_DEAD_LETTER_KEY = 1024
PREVIEW_CHARS = 500
MAX_DETAIL_CHARS = 2000
# A dead letter's Kafka key is the original key when it is at most this long, else its first KEY_PREFIX_BYTES
# and the SHA-256 of the whole (a 760 KB key must not make its dead letter too large to write).
MAX_DEAD_LETTER_KAFKA_KEY = 256
KEY_PREFIX_BYTES = 64


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Post(_Message):
    """A raw social-media post, as a source emits it (JSON on the posts topic).

    Key on the wire: the author, or no key at all (the pipeline then keys its result by the author named here).
    Fields not listed here are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="the contract's version; absent: 1")
    id: str = Field(
        min_length=1,
        max_length=128,
        default_factory=lambda: uuid.uuid4().hex,
        description="unique per post (the network's own id where there is one); absent: a random one",
    )
    author: str = Field(min_length=1, max_length=128, description="who wrote it; results are keyed by it")
    source: str = Field(min_length=1, max_length=64, description="the network or system it came from")
    text: str = Field(
        description="with at least one visible character; the pipeline dead-letters texts over "
        "SENTISTREAM_MAX_TEXT_CHARS (5,000 by default)"
    )
    created_at: float = Field(
        default_factory=time.time,
        ge=MIN_CREATED_AT,
        le=MAX_CREATED_AT,
        allow_inf_nan=False,
        description="when it was written at its source, UNIX epoch seconds; absent: the Kafka message's timestamp "
        "(if it has none, the time the pipeline reads it)",
    )
    lang: str | None = Field(
        default=None,
        max_length=LANGUAGE_TAG_MAX_CHARS,
        pattern=LANGUAGE_TAG_PATTERN,
        description="its language as a BCP-47 tag (en, en-US, pt-BR); absent, null or und: unknown. The pipeline "
        "dead-letters a post whose primary language the model does not read (unsupported_language)",
    )

    @field_validator("text")
    @classmethod
    def _text_has_content(cls, text: str) -> str:
        # JSON can carry lone UTF-16 surrogates ("\ud800"): no tokenizer or serializer accepts them.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PydanticCustomError(
                "lone_surrogate",
                "text holds a lone surrogate at character {position}, which is not Unicode text",
                {"position": exc.start},
            ) from None
        # Zero-width and control characters alone are no more text than spaces are.
        if not any(char.isprintable() and not char.isspace() for char in text):
            raise ValueError("text is empty or has no visible characters")
        return text


class SentimentResult(_Message):
    """The model's verdict on one post. Key on the wire: the author."""

    schema_version: Literal[1] = SCHEMA_VERSION
    post_id: str
    author: str
    source: str
    text: str
    label: Label
    score: float = Field(ge=0.0, le=1.0, description="confidence of the label")
    model: str
    model_version: str | None = Field(default=None, description="the build of the model (None: not versioned)")
    created_at: float = Field(description="post created at its source")
    produced_at: float = Field(description="post written to Kafka (its message timestamp)")
    processed_at: float = Field(description="the model finished scoring the post")


class RejectReason(StrEnum):
    """Why a message became a dead letter. The README's reliability section explains each."""

    EMPTY_PAYLOAD = "empty_payload"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    INVALID_FIELD = "invalid_field"
    # No longer written: an unkeyed post is keyed by the author its payload names. Kept so that the
    # dead letters written before still parse.
    MISSING_KEY = "missing_key"
    # The post's ``lang`` is one the served model does not read (SENTISTREAM_MODEL_LANGUAGES).
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    # The model raised (or answered wrongly) on this post alone, after its batch was split to isolate it.
    MODEL_ERROR = "model_error"
    # The post's result would not fit in a Kafka message.
    RESULT_TOO_LARGE = "result_too_large"
    # The message crashed a worker POISON_CRASH_LIMIT times (an unforeseen defect): set aside so the rest flows.
    POISON_MESSAGE = "poison_message"
    # A record on the results topic that is not a valid result (a foreign producer): the statistics skip it.
    INVALID_RESULT = "invalid_result"


# What happens to a message after it passed validation (or to a record on the results topic); every other
# reason is validation's verdict on a raw post.
LATER_STAGE_REASONS = frozenset(
    {RejectReason.MODEL_ERROR, RejectReason.RESULT_TOO_LARGE, RejectReason.POISON_MESSAGE, RejectReason.INVALID_RESULT}
)
# Reasons the pipeline no longer gives (see each one).
RETIRED_REASONS = frozenset({RejectReason.MISSING_KEY})


class DeadLetter(_Message):
    """A message the pipeline could not accept, with why and where it came from."""

    reason: RejectReason
    detail: str
    payload_base64: str = Field(description="the original bytes, exactly (only their beginning when payload_truncated)")
    payload_preview: str | None = Field(description="the original as text, if it was UTF-8 (cut)")
    payload_size: int | None = Field(default=None, description="bytes of the original payload")
    payload_truncated: bool = Field(default=False, description="payload_base64 holds only its beginning")
    payload_sha256: str | None = Field(default=None, description="of the whole original payload")
    key: str | None = Field(description="the original key as text (cut to MAX_DEAD_LETTER_KEY characters)")
    key_size: int | None = Field(default=None, description="bytes of the original key")
    key_sha256: str | None = Field(default=None, description="of the whole original key")
    source_topic: str
    partition: int
    offset: int
    failed_at: float = Field(default_factory=time.time)


class SentimentStats(_Message):
    """Event-time statistics of one source's results over one window. Key on the wire: the source."""

    source: str
    window_start: float
    window_end: float
    count: int
    label_counts: dict[str, int]
    mean_score: float


WorkerRole = Literal["classify", "stats"]


class WorkerState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # exited; starts again after its back-off
    CRASH_LOOPING = "crash_looping"  # restarted crash_loop_restarts times or more within the crash-loop window
    STOPPED = "stopped"
    WAITING = "waiting"  # a classifier with no model to load yet (PipelineStatus.waiting_for_model says why)


class WorkerStatus(_Message):
    """One worker process of a pipeline supervisor."""

    slot: int
    role: WorkerRole
    state: WorkerState
    pid: int | None
    restarts: int = Field(description="within the crash-loop window")
    restarts_total: int
    last_exit: str | None = Field(default=None, description="how the last process ended, e.g. 'exit code 1', 'SIGKILL'")
    last_error: str | None = Field(default=None, description="the exception that ended it, if it said")
    last_error_at: float | None = None
    careful: bool = Field(
        default=False, description="scoring one message per checkpoint after a crash, to find its cause"
    )
    stuck_at: str | None = Field(
        default=None, description="topic[partition]@offset the last crash happened on, if known"
    )
    poisoned: int = Field(default=0, description="messages set aside as poison_message since the supervisor started")
    state_resets: int = Field(
        default=0, description="statistics: local state found out of step with its changelog, dropped and restored"
    )


class PipelineStatus(_Message):
    """A pipeline supervisor's heartbeat on the status topic (key: its instance id), every status interval."""

    instance: str
    host: str
    pid: int
    consumer_group: str
    started_at: float
    sent_at: float
    interval_seconds: float
    stopping: bool = False
    workers: list[WorkerStatus]
    model: str | None = Field(default=None, description="what the classifier workers load; None: no model yet")
    model_version: str | None = Field(default=None, description="the build of that model (a .pt file's)")
    waiting_for_model: str | None = Field(default=None, description="why no classifier runs yet, if so")


class ModelChoice(_Message):
    """The model the pipeline should serve, chosen in the app: the last one on the control topic (compacted,
    key ``MODEL_CHOICE_KEY``) wins over ``SENTISTREAM_MODEL``. ``model`` is a spec (``sentiment_model.registry``)."""

    model: str = Field(min_length=1, max_length=1000)
    chosen_at: float
    by: str = Field(default="", max_length=200)


MODEL_CHOICE_KEY = b"model"


class InvalidPost(ValueError):
    """Raised by :func:`decode_post` with a machine-readable reason and a human one."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _json_depth(value: object) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node if isinstance(node, list) else ())
        ]
    return depth - 1


_PYDANTIC_REASONS = {
    "missing": RejectReason.MISSING_FIELD,
    "string_type": RejectReason.WRONG_TYPE,
    "float_type": RejectReason.WRONG_TYPE,
    "float_parsing": RejectReason.WRONG_TYPE,
    "literal_error": RejectReason.UNKNOWN_SCHEMA_VERSION,
}


def _post_time(timestamp_ms: int | None) -> float | None:
    """A Kafka timestamp in seconds, if a post may have it as its creation time (-1 and 0 are no timestamp)."""
    if timestamp_ms is None:
        return None
    seconds = timestamp_ms / 1000
    return seconds if MIN_CREATED_AT <= seconds <= MAX_CREATED_AT else None


def decode_post(raw: bytes | None, max_text_chars: int, timestamp_ms: int | None = None) -> Post:
    """Turn the bytes of a raw-topic message into a :class:`Post`, or raise :class:`InvalidPost`.

    ``timestamp_ms``, the message's Kafka timestamp, is the creation time of a post that gives none (a foreign
    producer's); without a usable one, the time of decoding is.
    """
    if not raw:
        raise InvalidPost(RejectReason.EMPTY_PAYLOAD, "message has no value (null or zero bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPost(
            RejectReason.INVALID_UTF8, f"payload is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise InvalidPost(RejectReason.TOO_DEEPLY_NESTED, "JSON nesting too deep to parse") from None
    except json.JSONDecodeError as exc:
        raise InvalidPost(RejectReason.INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # a number too long to convert (Python refuses integers of over 4,300 digits)
        raise InvalidPost(RejectReason.INVALID_JSON, f"a number in it cannot be read: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise InvalidPost(RejectReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(document).__name__}")
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise InvalidPost(RejectReason.TOO_DEEPLY_NESTED, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    version = document.get("schema_version", SCHEMA_VERSION)
    # The integer 1 itself: true and 1.0 are equal to it in Python, yet no producer of this schema writes them.
    if type(version) is not int or version != SCHEMA_VERSION:
        raise InvalidPost(
            RejectReason.UNKNOWN_SCHEMA_VERSION,
            f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION})",
        )
    if "created_at" not in document and (kafka_time := _post_time(timestamp_ms)) is not None:
        document = {**document, "created_at": kafka_time}
    try:
        post = Post.model_validate(document, strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "post"
        if field == "text" and error["type"] == "value_error":
            raise InvalidPost(RejectReason.EMPTY_TEXT, "text is empty or has no visible characters") from None
        reason = _PYDANTIC_REASONS.get(error["type"], RejectReason.INVALID_FIELD)
        raise InvalidPost(reason, f"{field}: {error['msg']}") from None
    if len(post.text) > max_text_chars:
        raise InvalidPost(
            RejectReason.TEXT_TOO_LONG, f"text has {len(post.text)} characters, the limit is {max_text_chars}"
        )
    return post


def primary_language(lang: str | None) -> str | None:
    """The primary language subtag of a post's ``lang``, lower case ("en" for "en-GB"); None when unknown."""
    if lang is None:
        return None
    primary = lang.split("-", 1)[0].lower()
    return None if primary == UNDETERMINED_LANGUAGE else primary


def language_supported(lang: str | None, languages: Collection[str]) -> bool:
    """Whether a model reading ``languages`` (primary subtags) reads a post in ``lang``; unknown ones it tries."""
    primary = primary_language(lang)
    return primary is None or primary in languages


@dataclass(frozen=True)
class Outgoing:
    """A message ready to produce: its Kafka key and value, serialized, known to fit."""

    key: bytes | None
    value: bytes

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value)


def message_budget(max_message_bytes: int) -> int:
    """Bytes of key plus value that fit under a message-size limit."""
    return max_message_bytes - MESSAGE_FRAMING_BYTES


def dead_letter_kafka_key(key: bytes | None) -> bytes | None:
    """The original key if short, else its first bytes and the SHA-256 of the whole (same key, same partition)."""
    if key is None or len(key) <= MAX_DEAD_LETTER_KAFKA_KEY:
        return key
    return key[:KEY_PREFIX_BYTES] + b"...sha256:" + hashlib.sha256(key).hexdigest().encode()


def _preview(raw: bytes, chars: int) -> str | None:
    try:
        # Decode it all, then cut: cutting the bytes first could split a character and lose the preview.
        return raw.decode("utf-8")[:chars]
    except UnicodeDecodeError:
        return None


def encode_dead_letter(
    reason: RejectReason,
    detail: str,
    raw: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    author: str | None = None,
) -> Outgoing:
    """The dead letter of one message, serialized so that key and value fit under ``max_message_bytes``.

    It keeps as much of the original payload as fits (up to MAX_DEAD_LETTER_PAYLOAD), then drops the preview;
    if even that is too big for the limit, a minimal letter: reason, sizes, hashes and source coordinates.
    Its Kafka key is the message's, or for an unkeyed message the ``author`` of its post when it was read: the
    key its result would have had.
    """
    raw = raw or b""
    kafka_key = dead_letter_kafka_key(key if key or author is None else author.encode())
    budget = message_budget(max_message_bytes) - len(kafka_key or b"")
    letter = DeadLetter(
        reason=reason,
        detail=detail[:MAX_DETAIL_CHARS],
        payload_base64="",
        payload_preview=None,
        payload_size=len(raw),
        payload_truncated=bool(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        key=key.decode("utf-8", "replace")[:MAX_DEAD_LETTER_KEY] if key else None,
        key_size=len(key) if key is not None else None,
        key_sha256=hashlib.sha256(key).hexdigest() if key is not None else None,
        source_topic=topic,
        partition=partition,
        offset=offset,
    )
    for preview_chars in (PREVIEW_CHARS, 0):
        shaped = letter.model_copy(update={"payload_preview": _preview(raw, preview_chars) if preview_chars else None})
        room = budget - len(shaped.to_bytes())
        if room < 0:
            continue
        kept = min(len(raw), MAX_DEAD_LETTER_PAYLOAD, room // 4 * 3)  # base64: 4 characters per 3 bytes
        shaped = shaped.model_copy(
            update={"payload_base64": base64.b64encode(raw[:kept]).decode(), "payload_truncated": kept < len(raw)}
        )
        value = shaped.to_bytes()
        if len(value) <= budget:
            return Outgoing(kafka_key, value)
    minimal = letter.model_copy(update={"detail": letter.detail[:200], "key": None})
    return Outgoing(kafka_key, minimal.to_bytes())


def dead_letter_for(
    error: InvalidPost,
    raw: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Outgoing:
    return encode_dead_letter(error.reason, error.detail, raw, key, topic, partition, offset, max_message_bytes)


class ResultTooLarge(ValueError):
    """A result whose key and value would not fit in one Kafka message."""


def encode_result(result: SentimentResult, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Outgoing:
    outgoing = Outgoing(result.author.encode(), result.to_bytes())
    if outgoing.size > message_budget(max_message_bytes):
        raise ResultTooLarge(
            f"the result is {outgoing.size} bytes, over the {max_message_bytes} bytes a message may have"
        )
    return outgoing


class SourceState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    RETRYING = "retrying"  # the connection failed or dropped; it tries again after a back-off (last_error says why)
    STOPPED = "stopped"


class SourceStatus(_Message):
    """A live source's state and counters on the source status topic (compacted, key: the source's name), sent
    every status interval and at once when its state changes."""

    name: str
    network: str = Field(description="the Post.source of its posts, e.g. bluesky")
    state: SourceState
    detail: str = Field(default="", description="what it follows and how, e.g. the stream or the REST fallback")
    last_error: str | None = None
    last_error_at: float | None = None
    retry_at: float | None = Field(default=None, description="when it connects again (retrying)")
    failures: int = Field(default=0, description="consecutive failed attempts")
    posts: int = Field(default=0, description="sent since the source process started")
    posts_per_second: float = 0.0
    duplicates: int = Field(default=0, description="posts seen again (a replay after a reconnect), not sent")
    skipped: dict[str, int] = Field(default_factory=dict, description="posts not sent, by reason, e.g. language")
    bad_frames: int = Field(default=0, description="messages from the network that could not be read")
    position: str | None = Field(default=None, description="where it resumes: the network's cursor")
    last_post_at: float | None = None
    started_at: float
    sent_at: float
    interval_seconds: float
