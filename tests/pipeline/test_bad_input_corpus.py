"""A corpus of malformed messages through the real pipeline: one dead letter each, with its specific reason.

Every kind of bad input someone (or something) may write to the raw topic is sent, interleaved with
good and strange-but-valid posts, to the running pipeline (classifier and statistics workers). Each
bad message must come out as exactly one dead letter with the expected reason, the original bytes
and key and where it came from; each good post as exactly one result; and no process may crash,
restart or fall behind (a poison message would make a worker die on it again at every restart).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Producer

from common.contract import (
    LATER_STAGE_REASONS,
    MAX_DEAD_LETTER_KEY,
    MAX_DEAD_LETTER_PAYLOAD,
    RETIRED_REASONS,
    DeadLetter,
    Post,
    RejectReason,
)
from common.settings import Settings
from pipeline.application import STATS_GROUP_SUFFIX
from tests.faults.support import log_problems, pipeline_workers, wait_for_workers, wait_until_caught_up
from tests.processes import running
from tests.topic_reader import read_all

LIMIT = 5000  # the product's default max_text_chars
R = RejectReason


def document(**fields) -> dict:
    post = {
        "schema_version": 1,
        "id": "p-1",
        "author": "ada",
        "source": "twitter",
        "text": "I love it",
        "created_at": 1.7e9,
    }
    post.update(fields)
    return {k: v for k, v in post.items() if v is not ...}


def as_json(**fields) -> bytes:
    return json.dumps(document(**fields)).encode()


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


@dataclass(frozen=True)
class Bad:
    kind: str
    value: bytes | None
    reason: RejectReason
    key: bytes | None = b"ada"


CORPUS = [
    # Not JSON at all, or broken JSON
    Bad("unclosed object", b'{"author": "ada", "source": "twitter", "text": "hi"', R.INVALID_JSON),
    Bad("truncated mid-string", b'{"author": "ada", "source": "twitter", "text": "I lo', R.INVALID_JSON),
    Bad("trailing garbage after the object", as_json() + b" and then some", R.INVALID_JSON),
    Bad("single-quoted pseudo-JSON", b"{'author': 'ada', 'source': 'twitter', 'text': 'hi'}", R.INVALID_JSON),
    Bad(
        "raw control character inside a string",
        b'{"author": "ada", "source": "twitter", "text": "a\x01b"}',
        R.INVALID_JSON,
    ),
    Bad("UTF-8 byte order mark before the JSON", b"\xef\xbb\xbf" + as_json(), R.INVALID_JSON),
    Bad("whitespace only", b"  \n\t  ", R.INVALID_JSON),
    Bad("huge binary key and a broken value", b"{", R.INVALID_JSON, key=random.Random(1).randbytes(100_000)),
    # Not UTF-8
    Bad("Latin-1 text", '{"author": "ada", "source": "twitter", "text": "café"}'.encode("latin-1"), R.INVALID_UTF8),
    Bad("overlong UTF-8 encoding", b'{"author": "ada", "source": "twitter", "text": "\xc0\xaf"}', R.INVALID_UTF8),
    Bad("UTF-16 encoded JSON", json.dumps(document()).encode("utf-16"), R.INVALID_UTF8),
    Bad(
        "UTF-8-encoded surrogate (CESU-8)",
        b'{"author": "ada", "source": "twitter", "text": "\xed\xa0\x80"}',
        R.INVALID_UTF8,
    ),
    Bad(
        "binary garbage (a PNG header and noise)",
        b"\x89PNG\r\n\x1a\n" + random.Random(2).randbytes(2048),
        R.INVALID_UTF8,
    ),
    # JSON, but not an object
    Bad("JSON array", b'[{"author": "ada", "source": "twitter", "text": "hi"}]', R.NOT_AN_OBJECT),
    Bad("JSON string", b'"I love it"', R.NOT_AN_OBJECT),
    Bad("JSON null", b"null", R.NOT_AN_OBJECT),
    Bad("JSON number", b"42", R.NOT_AN_OBJECT),
    # Too deep
    Bad("40 nested objects", json.dumps(nested(40)).encode(), R.TOO_DEEPLY_NESTED),
    Bad("100,000 nested arrays (RecursionError)", b"[" * 100_000 + b"]" * 100_000, R.TOO_DEEPLY_NESTED),
    Bad("valid post with a deeply nested extra field", as_json(extra=nested(40)), R.TOO_DEEPLY_NESTED),
    # Wrong schema version
    Bad("schema_version 2", as_json(schema_version=2), R.UNKNOWN_SCHEMA_VERSION),
    Bad("schema_version as a string", as_json(schema_version="1"), R.UNKNOWN_SCHEMA_VERSION),
    Bad("schema_version null", as_json(schema_version=None), R.UNKNOWN_SCHEMA_VERSION),
    # Missing fields, wrong types, nulls
    Bad("empty object", b"{}", R.MISSING_FIELD),
    Bad("no text", as_json(text=...), R.MISSING_FIELD),
    Bad("no author", as_json(author=...), R.MISSING_FIELD),
    Bad("text is a number", as_json(text=42), R.WRONG_TYPE),
    Bad("text is null", as_json(text=None), R.WRONG_TYPE),
    Bad("text is an object", as_json(text={"body": "hi"}), R.WRONG_TYPE),
    Bad("author is a list", as_json(author=["ada"]), R.WRONG_TYPE),
    Bad("author is null", as_json(author=None), R.WRONG_TYPE),
    Bad("lang is a list", as_json(lang=["en"]), R.WRONG_TYPE),
    Bad("created_at is a date string", as_json(created_at="2026-01-01T00:00:00Z"), R.WRONG_TYPE),
    Bad("created_at is a boolean", as_json(created_at=True), R.WRONG_TYPE),
    # Empty text
    Bad("empty text", as_json(text=""), R.EMPTY_TEXT),
    Bad("whitespace text", as_json(text=" \t\n\u3000 "), R.EMPTY_TEXT),
    Bad("control characters only", as_json(text="\u0000\u0007\u001b"), R.EMPTY_TEXT),
    Bad("zero-width characters only", as_json(text="\u200b\u200d\ufeff"), R.EMPTY_TEXT),
    # Too long
    Bad("text one character over the limit", as_json(text="x" * (LIMIT + 1)), R.TEXT_TOO_LONG),
    Bad("huge text, near Kafka's message size limit", as_json(text="y" * 900_000), R.TEXT_TOO_LONG),
    # Values out of range
    Bad("empty author", as_json(author=""), R.INVALID_FIELD),
    Bad("author over 128 characters", as_json(author="a" * 129), R.INVALID_FIELD),
    Bad("id over 128 characters", as_json(id="i" * 129), R.INVALID_FIELD),
    Bad("negative created_at", as_json(created_at=-5), R.INVALID_FIELD),
    Bad("created_at under a millisecond after the epoch", as_json(created_at=1e-38), R.INVALID_FIELD),
    Bad(
        "created_at Infinity",
        b'{"author": "ada", "source": "twitter", "text": "hi", "created_at": Infinity}',
        R.INVALID_FIELD,
    ),
    Bad("created_at NaN", b'{"author": "ada", "source": "twitter", "text": "hi", "created_at": NaN}', R.INVALID_FIELD),
    Bad(
        "created_at 1e999 (infinite as a float)",
        b'{"author": "ada", "source": "twitter", "text": "hi", "created_at": 1e999}',
        R.INVALID_FIELD,
    ),
    Bad("created_at after the year 9999", as_json(created_at=1e300), R.INVALID_FIELD),
    Bad("lang not a BCP-47 tag", as_json(lang="en_US"), R.INVALID_FIELD),
    Bad(
        "lone surrogate escaped in the text",
        b'{"author": "ada", "source": "twitter", "text": "hi \\ud800 there"}',
        R.INVALID_FIELD,
    ),
    # No payload; no author and no key
    Bad("null value (a tombstone)", None, R.EMPTY_PAYLOAD),
    Bad("zero-byte value", b"", R.EMPTY_PAYLOAD),
    Bad("no author, no key", as_json(id="no-author", author=...), R.MISSING_FIELD, key=None),
    # A language the model does not read
    Bad("German", as_json(id="german", lang="de"), R.UNSUPPORTED_LANGUAGE),
    Bad("Brazilian Portuguese, no key", as_json(id="portuguese", lang="pt-BR"), R.UNSUPPORTED_LANGUAGE, key=None),
]

# Strange but valid: each must get its result like any other post.
GOOD = [
    Post(author="ada", source="twitter", text="What a lovely morning"),
    Post(author="bo", source="reddit", text="😀🎉🔥"),
    Post(author="chen", source="mastodon", text="أحب هذا كثيرا"),
    Post(author="dee", source="twitter", text="cafe\u0301 au lait, tre\u0300s bien"),
    Post(author="eve", source="twitter", text="hello\u0000world with a NUL inside"),
    Post(author="fay", source="twitter", text="z" * LIMIT),
    Post(author="gus", source="twitter", text="  padded with spaces  "),
    Post(author="hal", source="news-comments", text="Line one\nLine two\r\n\ttabbed"),
    Post(author="ivy", source="bluesky", text="Cheers, that was brilliant", lang="en-GB"),
    Post(author="jo", source="bluesky", text="Not sure what to make of it", lang="und"),
]


def test_the_corpus_covers_at_least_25_kinds_and_every_reason() -> None:
    assert len({bad.kind for bad in CORPUS}) == len(CORPUS) >= 25
    assert {bad.reason for bad in CORPUS} == set(RejectReason) - LATER_STAGE_REASONS - RETIRED_REASONS


@pytest.fixture
def corpus_settings(settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "model": str(tiny_model_path),
            "batch_size": 16,
            "batch_max_wait_ms": 50,
            "max_text_chars": LIMIT,
            "stats_window_seconds": 1,
            "stats_grace_seconds": 0,
        }
    )


def test_every_kind_of_bad_input_is_one_dead_letter_with_its_reason_and_nothing_stops(
    corpus_settings: Settings, tmp_path: Path
) -> None:
    settings = corpus_settings
    log = tmp_path / "pipeline.log"
    messages: list[tuple[bytes | None, bytes | None]] = []
    good = iter(GOOD)
    for index, bad in enumerate(CORPUS):  # a good post after every few bad ones
        messages.append((bad.key, bad.value))
        if index % 6 == 5:
            post = next(good)
            messages.append((post.author.encode(), post.to_bytes()))
    messages += [(post.author.encode(), post.to_bytes()) for post in good]

    with running(settings, "pipeline", log=log) as pipeline:
        workers = wait_for_workers(pipeline, 2, timeout=30)
        producer = Producer(settings.kafka_client_config())
        for key, value in messages:
            producer.produce(settings.topic_posts, key=key, value=value)
        assert producer.flush(30) == 0
        read_all(settings, settings.topic_results, timeout=180, at_least=len(GOOD))
        wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=120)
        wait_until_caught_up(settings, settings.consumer_group + STATS_GROUP_SUFFIX, settings.topic_results, timeout=60)
        assert pipeline_workers(pipeline) == workers, f"a worker died on bad input (poison message); log: {log}"
    assert pipeline.returncode == 0
    assert not log_problems(log), f"errors logged: {log_problems(log)[:3]}"

    raw = {(m.partition(), m.offset()): (m.key(), m.value()) for m in read_all(settings, settings.topic_posts)}
    letters = read_all(settings, settings.topic_dead_letters)
    assert all(len(m.value()) < 1_000_000 for m in letters), "a dead letter must always fit in a Kafka message"
    by_kind: dict[str, list[DeadLetter]] = {}
    for message in letters:
        letter = DeadLetter.model_validate_json(message.value())
        assert letter.source_topic == settings.topic_posts and letter.detail
        key, value = raw[(letter.partition, letter.offset)]
        kind = next(bad.kind for bad in CORPUS if (bad.key, bad.value) == (key, value))
        by_kind.setdefault(kind, []).append(letter)
        original = value or b""
        assert base64.b64decode(letter.payload_base64) == original[:MAX_DEAD_LETTER_PAYLOAD]
        assert (letter.payload_size, letter.payload_truncated) == (
            len(original),
            len(original) > MAX_DEAD_LETTER_PAYLOAD,
        )
        assert letter.key == (key.decode("utf-8", "replace")[:MAX_DEAD_LETTER_KEY] if key else None)

    wrong = {
        kind: [letter.reason.value for letter in got]
        for kind, got in by_kind.items()
        if [letter.reason for letter in got] != [next(b.reason for b in CORPUS if b.kind == kind)]
    }
    missing = [bad.kind for bad in CORPUS if bad.kind not in by_kind]
    assert not missing, f"no dead letter for: {missing}"
    assert not wrong, f"wrong reason or count: {wrong}"
    assert len(letters) == len(CORPUS)

    results = [json.loads(m.value())["post_id"] for m in read_all(settings, settings.topic_results)]
    assert sorted(results) == sorted(post.id for post in GOOD), "every good post, and only those, has one result"
