"""The message contract: what travels on each topic, validated with pydantic, JSON on the wire.

Times are UNIX epoch seconds (float) so that latency is a subtraction and the wire stays small.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1
LABELS = ("POSITIVE", "NEUTRAL", "NEGATIVE")
Label = Literal["POSITIVE", "NEUTRAL", "NEGATIVE"]

# Deeper JSON than this is refused before pydantic sees it (a post is a flat object).
MAX_JSON_DEPTH = 32
# The latest creation time accepted, 9999-12-31T23:59:59Z: an infinite or later time has no datetime and no
# millisecond Kafka timestamp, and one such post used to crash the statistics worker at every restart.
MAX_CREATED_AT = 253402300799.0
# The earliest: one millisecond after the epoch. Anything smaller rounds to Kafka timestamp 0 or below.
MIN_CREATED_AT = 0.001
# A dead letter must always fit in one Kafka message (librdkafka's message.max.bytes: 1,000,000 by default),
# whatever arrived: it keeps the original payload exactly up to this many bytes, and the key up to this many
# characters (``payload_truncated`` and ``payload_size`` tell when it is cut).
MAX_DEAD_LETTER_PAYLOAD = 256 * 1024
MAX_DEAD_LETTER_KEY = 1024


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Post(_Message):
    """A raw social-media post, as a source emits it. Key on the wire: the author."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(min_length=1, max_length=128, default_factory=lambda: uuid.uuid4().hex)
    author: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=64)
    text: str
    created_at: float = Field(
        default_factory=time.time, ge=MIN_CREATED_AT, le=MAX_CREATED_AT, allow_inf_nan=False, description="at the source"
    )

    @field_validator("text")
    @classmethod
    def _text_has_content(cls, text: str) -> str:
        # JSON can carry lone UTF-16 surrogates ("\ud800"): no tokenizer or serializer accepts them.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PydanticCustomError(
                "lone_surrogate", "text holds a lone surrogate at character {position}, which is not Unicode text",
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
    created_at: float = Field(description="post created at its source")
    produced_at: float = Field(description="post written to Kafka (its message timestamp)")
    processed_at: float = Field(description="the model finished scoring the post")


class RejectReason(str, Enum):
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
    MISSING_KEY = "missing_key"


class DeadLetter(_Message):
    """A message the pipeline could not accept, with why and where it came from."""

    reason: RejectReason
    detail: str
    payload_base64: str = Field(description="the original bytes, exactly (the first MAX_DEAD_LETTER_PAYLOAD of a bigger one)")
    payload_preview: str | None = Field(description="the original as text, if it was UTF-8 (cut)")
    payload_size: int | None = Field(default=None, description="bytes of the original payload")
    payload_truncated: bool = Field(default=False, description="payload_base64 holds only its beginning")
    key: str | None
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


def decode_post(raw: bytes | None, max_text_chars: int) -> Post:
    """Turn the bytes of a raw-topic message into a :class:`Post`, or raise :class:`InvalidPost`."""
    if not raw:
        raise InvalidPost(RejectReason.EMPTY_PAYLOAD, "message has no value (null or zero bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPost(RejectReason.INVALID_UTF8, f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise InvalidPost(RejectReason.TOO_DEEPLY_NESTED, "JSON nesting too deep to parse") from None
    except json.JSONDecodeError as exc:
        raise InvalidPost(RejectReason.INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(document, dict):
        raise InvalidPost(RejectReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(document).__name__}")
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise InvalidPost(RejectReason.TOO_DEEPLY_NESTED, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidPost(
            RejectReason.UNKNOWN_SCHEMA_VERSION, f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
        )
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
        raise InvalidPost(RejectReason.TEXT_TOO_LONG, f"text has {len(post.text)} characters, the limit is {max_text_chars}")
    return post


def dead_letter_for(
    error: InvalidPost, raw: bytes | None, key: bytes | None, topic: str, partition: int, offset: int
) -> DeadLetter:
    raw = raw or b""
    try:
        # Decode it all, then cut: cutting the bytes first could split a character and lose the preview.
        preview: str | None = raw.decode("utf-8")[:500]
    except UnicodeDecodeError:
        preview = None
    return DeadLetter(
        reason=error.reason,
        detail=error.detail,
        payload_base64=base64.b64encode(raw[:MAX_DEAD_LETTER_PAYLOAD]).decode(),
        payload_preview=preview,
        payload_size=len(raw),
        payload_truncated=len(raw) > MAX_DEAD_LETTER_PAYLOAD,
        key=key.decode("utf-8", "replace")[:MAX_DEAD_LETTER_KEY] if key else None,
        source_topic=topic,
        partition=partition,
        offset=offset,
    )
