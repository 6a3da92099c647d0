"""Reading the results topic for the statistics: a deserializer and a timestamp extractor that never raise.

Any producer can write to the results topic. Quix calls both for every record before our code sees it,
and an exception there would stop the statistics worker on that record at every restart. So a record that
is not a valid result becomes an ``InvalidResult`` (dead-lettered by the statistics definition) and keeps
its Kafka timestamp; a valid one is windowed on its post's creation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from quixstreams.models.serializers import Deserializer

from common.contract import MAX_CREATED_AT, MIN_CREATED_AT, SentimentResult


@dataclass(frozen=True)
class InvalidResult:
    detail: str
    raw: bytes | None


def empty_result(raw: bytes | None) -> InvalidResult:
    return InvalidResult("message has no value (null or zero bytes)", raw)


def validate_result(raw: bytes | None) -> dict[str, Any] | InvalidResult:
    """A valid result as the dict the windows reduce, or why it is not one."""
    if not raw:
        return empty_result(raw)
    try:
        result = SentimentResult.model_validate_json(raw, strict=True)  # a time given as a string is not a result
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "result"
        return InvalidResult(f"not a sentiment result: {field}: {error['msg']}", raw)
    if not MIN_CREATED_AT <= result.created_at <= MAX_CREATED_AT:
        return InvalidResult(f"created_at {result.created_at!r} is not a time a window can hold", raw)
    return result.model_dump(mode="json")


class ResultDeserializer(Deserializer):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # quixstreams leaves Deserializer.__init__ untyped

    def __call__(self, value: bytes, ctx: Any) -> dict[str, Any] | InvalidResult:
        return validate_result(value)


def event_time_ms(value: Any, _headers: Any, timestamp: int, _timestamp_type: Any) -> int:
    """The post's creation time for a valid result, the record's own timestamp for anything else."""
    if isinstance(value, dict):
        return int(value["created_at"] * 1000)
    return timestamp
