"""The message contract: what is accepted, and the specific reason for everything that is not."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common.contract import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LATER_STAGE_REASONS,
    MAX_CREATED_AT,
    MAX_DEAD_LETTER_KAFKA_KEY,
    MAX_JSON_DEPTH,
    DeadLetter,
    InvalidPost,
    Post,
    RejectReason,
    ResultTooLarge,
    SentimentResult,
    dead_letter_for,
    dead_letter_kafka_key,
    decode_post,
    encode_dead_letter,
    encode_result,
    language_supported,
    message_budget,
    primary_language,
)
from common.settings import Settings

LIMIT = 200
FIRST_STAGE_REASONS = frozenset(
    {RejectReason.EMPTY_PAYLOAD, RejectReason.INVALID_UTF8, RejectReason.INVALID_JSON, RejectReason.NOT_AN_OBJECT}
)


def post_json(**fields) -> bytes:
    document = {
        "schema_version": 1,
        "id": "p1",
        "author": "ada",
        "source": "twitter",
        "text": "I love it",
        "created_at": 1.7e9,
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def test_a_valid_post_round_trips() -> None:
    post = Post(author="ada", source="twitter", text="Lovely day ☀️")
    assert decode_post(post.to_bytes(), LIMIT) == post


def test_schema_version_defaults_to_current_when_absent() -> None:
    assert decode_post(post_json(schema_version=...), LIMIT).schema_version == 1


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (None, RejectReason.EMPTY_PAYLOAD, "no value"),
        (b"", RejectReason.EMPTY_PAYLOAD, "no value"),
        (b"\xff\xfe{}", RejectReason.INVALID_UTF8, "not UTF-8"),
        (b'{"author": "ada",', RejectReason.INVALID_JSON, "line 1"),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT, "got list"),
        (b'"just a string"', RejectReason.NOT_AN_OBJECT, "got str"),
        (b"null", RejectReason.NOT_AN_OBJECT, "got NoneType"),
        (post_json(schema_version=2), RejectReason.UNKNOWN_SCHEMA_VERSION, "schema_version 2"),
        (post_json(schema_version="1"), RejectReason.UNKNOWN_SCHEMA_VERSION, "'1'"),
        (post_json(text=...), RejectReason.MISSING_FIELD, "text"),
        (post_json(author=...), RejectReason.MISSING_FIELD, "author"),
        (post_json(text=42), RejectReason.WRONG_TYPE, "text"),
        (post_json(text=None), RejectReason.WRONG_TYPE, "text"),
        (post_json(created_at="yesterday"), RejectReason.WRONG_TYPE, "created_at"),
        (post_json(text=""), RejectReason.EMPTY_TEXT, "empty"),
        (post_json(text=" \t\n "), RejectReason.EMPTY_TEXT, "empty"),
        (post_json(text="\u200b\u200b"), RejectReason.EMPTY_TEXT, "visible"),
        (
            post_json(text="x" * (LIMIT + 1)),
            RejectReason.TEXT_TOO_LONG,
            f"{LIMIT + 1} characters, the limit is {LIMIT}",
        ),
        (post_json(author=""), RejectReason.INVALID_FIELD, "author"),
        (post_json(created_at=-5), RejectReason.INVALID_FIELD, "created_at"),
        (post_json(lang=5), RejectReason.WRONG_TYPE, "lang"),
        (post_json(lang=["en"]), RejectReason.WRONG_TYPE, "lang"),
        (post_json(lang=""), RejectReason.INVALID_FIELD, "lang"),
        (post_json(lang="english!"), RejectReason.INVALID_FIELD, "lang"),
        (post_json(lang="en_US"), RejectReason.INVALID_FIELD, "lang"),  # a POSIX locale, not a BCP-47 tag
        (post_json(lang="e"), RejectReason.INVALID_FIELD, "lang"),
        (post_json(lang="en-" + "x" * 40), RejectReason.INVALID_FIELD, "lang"),
        (
            b'{"a":' * (MAX_JSON_DEPTH + 5) + b"1" + b"}" * (MAX_JSON_DEPTH + 5),
            RejectReason.TOO_DEEPLY_NESTED,
            "deeper",
        ),
        (b"[" * 100_000 + b"]" * 100_000, RejectReason.TOO_DEEPLY_NESTED, "too deep"),
    ],
)
def test_each_kind_of_bad_input_has_a_specific_reason(raw: bytes | None, reason: RejectReason, detail: str) -> None:
    with pytest.raises(InvalidPost) as caught:
        decode_post(raw, LIMIT)
    assert caught.value.reason is reason
    assert detail in caught.value.detail


@pytest.mark.parametrize("lang", ["en", "en-GB", "EN-gb", "de", "zh-Hant-TW", "und", None, ...])
def test_lang_is_a_bcp47_tag_or_unknown(lang: str | None) -> None:
    assert decode_post(post_json(lang=lang), LIMIT).lang == (None if lang is ... else lang)


@pytest.mark.parametrize(
    ("lang", "primary", "read_by_english_model"),
    [
        ("en", "en", True),
        ("en-GB", "en", True),
        ("EN-us", "en", True),
        ("de", "de", False),
        ("de-AT", "de", False),
        ("und", None, True),  # BCP-47's "undetermined"
        (None, None, True),
    ],
)
def test_a_post_is_read_when_its_primary_language_is_the_models_or_unknown(
    lang: str | None, primary: str | None, read_by_english_model: bool
) -> None:
    assert primary_language(lang) == primary
    assert language_supported(lang, frozenset({"en"})) is read_by_english_model
    assert language_supported(lang, frozenset({"en", "de"})) is (primary in (None, "en", "de"))


def test_a_post_without_created_at_was_created_at_its_kafka_timestamp() -> None:
    post = decode_post(post_json(created_at=...), LIMIT, timestamp_ms=1_700_000_000_123)
    assert post.created_at == 1_700_000_000.123


def test_a_posts_own_created_at_wins_over_the_kafka_timestamp() -> None:
    assert decode_post(post_json(created_at=1.6e9), LIMIT, timestamp_ms=1_700_000_000_123).created_at == 1.6e9


@pytest.mark.parametrize("timestamp_ms", [None, -1, 0, int(MAX_CREATED_AT * 1000) + 1000])
def test_without_a_usable_kafka_timestamp_a_post_without_created_at_was_created_when_read(
    timestamp_ms: int | None,
) -> None:
    """-1 and 0: the message has no timestamp; one after the year 9999 no post may have."""
    before = time.time()
    post = decode_post(post_json(created_at=...), LIMIT, timestamp_ms=timestamp_ms)
    assert before <= post.created_at <= time.time()


@pytest.mark.parametrize("key", [None, b""])
def test_the_dead_letter_of_an_unkeyed_post_is_keyed_by_its_author(key: bytes | None) -> None:
    raw = post_json(lang="de")
    outgoing = encode_dead_letter(
        RejectReason.UNSUPPORTED_LANGUAGE, "German", raw, key, "posts.raw", 0, 9, author="ada"
    )
    letter = DeadLetter.model_validate_json(outgoing.value)
    assert outgoing.key == b"ada"
    assert (letter.key, letter.key_size) == (None, None if key is None else 0), "the letter tells the original key"


def test_a_dead_letter_keeps_the_messages_own_key_and_a_long_author_is_cut_like_a_key() -> None:
    raw = post_json()
    keyed = encode_dead_letter(RejectReason.MODEL_ERROR, "x", raw, b"k", "posts.raw", 0, 1, author="ada")
    assert keyed.key == b"k"
    author = "€" * 128  # 384 bytes of UTF-8: cut as a key that long is
    assert len(author.encode()) > MAX_DEAD_LETTER_KAFKA_KEY
    unkeyed = encode_dead_letter(RejectReason.MODEL_ERROR, "x", raw, None, "posts.raw", 0, 1, author=author)
    assert unkeyed.key == dead_letter_kafka_key(author.encode())


def test_a_dead_letter_keeps_the_exact_payload_and_where_it_came_from() -> None:
    raw = b"\xff not utf-8"
    error = InvalidPost(RejectReason.INVALID_UTF8, "bad byte")
    outgoing = dead_letter_for(error, raw, b"ada", "posts.raw", 3, 41)
    letter = DeadLetter.model_validate_json(outgoing.value)
    assert outgoing.key == b"ada"
    assert base64.b64decode(letter.payload_base64) == raw
    assert letter.payload_preview is None
    assert (letter.source_topic, letter.partition, letter.offset, letter.key) == ("posts.raw", 3, 41, "ada")
    assert (letter.reason, letter.detail, letter.payload_size, letter.payload_truncated) == (
        RejectReason.INVALID_UTF8,
        "bad byte",
        len(raw),
        False,
    )
    assert (
        letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
        and letter.key_sha256 == hashlib.sha256(b"ada").hexdigest()
    )


def test_results_refuse_unknown_labels_and_out_of_range_scores() -> None:
    fields = dict(
        post_id="p", author="a", source="s", text="t", model="m", created_at=1.0, produced_at=1.0, processed_at=1.0
    )
    SentimentResult(label="NEUTRAL", score=0.5, **fields)
    with pytest.raises(ValidationError):
        SentimentResult(label="HAPPY", score=0.5, **fields)
    with pytest.raises(ValidationError):
        SentimentResult(label="NEUTRAL", score=1.5, **fields)


def first_failing_stage(raw: bytes) -> RejectReason | None:
    """The README's first four reasons, in their order, from Python's own UTF-8 and JSON: the reason a message
    must get when it fails one of those stages; None when it is a JSON object (later stages decide)."""
    if not raw:
        return RejectReason.EMPTY_PAYLOAD
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return RejectReason.INVALID_UTF8
    try:
        document = json.loads(text)
    except RecursionError:
        return RejectReason.TOO_DEEPLY_NESTED
    except ValueError:
        return RejectReason.INVALID_JSON
    return None if isinstance(document, dict) else RejectReason.NOT_AN_OBJECT


@settings(deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=100).map(str.encode),
        st.recursive(st.none() | st.integers() | st.text(max_size=5), st.lists, max_leaves=5).map(
            lambda value: json.dumps(value).encode()
        ),
    )
)
def test_any_bytes_give_a_post_or_the_reason_of_the_first_stage_they_fail(raw: bytes) -> None:
    expected = first_failing_stage(raw)
    try:
        post = decode_post(raw, LIMIT)
    except InvalidPost as error:
        assert error.detail
        if expected is None:
            assert error.reason in set(RejectReason) - LATER_STAGE_REASONS - FIRST_STAGE_REASONS
        else:
            assert error.reason is expected
    else:
        assert expected is None
        assert post.text.strip() and len(post.text) <= LIMIT


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


# The machine may be busy training a model next door: judge the validator, not the generator's speed.
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "schema_version": json_values,
            "id": json_values,
            "author": json_values,
            "source": json_values,
            "text": json_values | st.text(max_size=LIMIT + 20),
            "created_at": json_values,
            "lang": json_values | st.sampled_from(["en", "en-GB", "de", "und", "x"]),
        },
    )
)
def test_any_json_object_gives_a_post_or_a_specific_reason(document: dict) -> None:
    raw = json.dumps(document).encode()
    version = document.get("schema_version", 1)
    try:
        post = decode_post(raw, LIMIT)
    except InvalidPost as error:
        assert error.reason in set(RejectReason) - LATER_STAGE_REASONS - FIRST_STAGE_REASONS and error.detail
        if not (type(version) is int and version == 1):  # the README: "schema_version other than 1" (after depth)
            assert error.reason in (RejectReason.UNKNOWN_SCHEMA_VERSION, RejectReason.TOO_DEEPLY_NESTED)
    else:
        assert type(version) is int and version == 1
        assert isinstance(document["text"], str) and isinstance(document["author"], str)
        assert post.text == document["text"]


# Floats as JSON can carry them (json.dumps writes Infinity/NaN; 1e999 parses as infinity) and text with
# anything in it, lone surrogates included ("\ud800" escapes are valid JSON).
wild_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-38, 0.000999, 0.001, 1e300, 2.6e11, 9.3e15]
)
wild_text = st.text(st.characters(codec=None, categories=None), max_size=40)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.fixed_dictionaries(
        {"author": wild_text, "source": wild_text, "text": wild_text},
        optional={"created_at": wild_floats | st.integers(), "id": wild_text},
    )
)
def test_every_accepted_post_can_be_scored_and_emitted_downstream(document: dict) -> None:
    """What the validator accepts, the pipeline must be able to emit and the statistics to window:
    a post that passes validation but breaks later is a poison message that stops a worker for good."""
    raw = json.dumps(document, ensure_ascii=True).encode()
    try:
        post = decode_post(raw, LIMIT)
    except InvalidPost as error:
        assert error.reason in set(RejectReason) - LATER_STAGE_REASONS and error.detail
        return
    assert decode_post(post.to_bytes(), LIMIT) == post  # round trip: what the producer would write
    post.text.encode("utf-8")  # what the tokenizer gets
    result = SentimentResult(
        post_id=post.id,
        author=post.author,
        source=post.source,
        text=post.text,
        label="NEUTRAL",
        score=0.5,
        model="m",
        created_at=post.created_at,
        produced_at=post.created_at,
        processed_at=post.created_at,
    )
    emitted = json.loads(result.to_bytes())
    assert emitted["created_at"] == post.created_at  # a number, never null (infinity serialises as null)
    assert 0 < int(emitted["created_at"] * 1000) < 2**63  # a Kafka timestamp (the statistics' event time)


LIMITS = [64 * 1024, 100_000, 1_000_000, 1_048_588]


@settings(deadline=None, max_examples=80)
@given(
    size=st.integers(0, 3_000_000),
    fill=st.sampled_from([b"x", b"\xff", b"\x00", "é".encode(), b'"', b"\\", b"\n", b"random"]),
    key_size=st.integers(0, 1_100_000),
    limit=st.sampled_from(LIMITS),
)
def test_a_dead_letter_always_fits_under_the_message_limit(size: int, fill: bytes, key_size: int, limit: int) -> None:
    """Keys and values from empty to past the broker's limit, incompressible and compressible, escaped and not."""
    if fill == b"random":
        raw, key = os.urandom(size), os.urandom(key_size)
    else:
        raw, key = (fill * size)[:size], (fill * key_size)[:key_size]
    outgoing = dead_letter_for(
        InvalidPost(RejectReason.INVALID_JSON, "x"), raw, key, "posts.raw", 0, 1, max_message_bytes=limit
    )
    assert outgoing.size <= message_budget(limit)
    letter = DeadLetter.model_validate_json(outgoing.value)
    kept = base64.b64decode(letter.payload_base64)
    assert raw.startswith(kept) and (kept == raw) == (not letter.payload_truncated)
    assert (letter.payload_size, letter.payload_sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert (letter.key_size, letter.key_sha256) == (len(key), hashlib.sha256(key).hexdigest())
    # The Kafka key: the original when short, else a prefix and the hash of the whole (the same key stays together).
    assert outgoing.key == (key if len(key) <= MAX_DEAD_LETTER_KAFKA_KEY else dead_letter_kafka_key(key))
    assert outgoing.key is not None and len(outgoing.key) <= MAX_DEAD_LETTER_KAFKA_KEY + 80


def test_a_dead_letter_keeps_all_it_can() -> None:
    """Under the limit, the payload is cut only as far as needed; a limit too small for any payload keeps the rest."""
    raw = os.urandom(200_000)
    whole = DeadLetter.model_validate_json(
        dead_letter_for(InvalidPost(RejectReason.INVALID_JSON, "x"), raw, b"k", "t", 0, 1).value
    )
    assert base64.b64decode(whole.payload_base64) == raw and not whole.payload_truncated
    tight = dead_letter_for(
        InvalidPost(RejectReason.INVALID_JSON, "x"), raw, b"k", "t", 0, 1, max_message_bytes=100_000
    )
    letter = DeadLetter.model_validate_json(tight.value)
    assert message_budget(100_000) - 4 <= tight.size <= message_budget(100_000)  # filled to within one base64 quantum
    assert letter.payload_truncated and len(base64.b64decode(letter.payload_base64)) > 70_000


def test_a_dead_letter_with_room_for_nothing_but_its_facts_keeps_those() -> None:
    key = ("é" * 50_000).encode()
    outgoing = encode_dead_letter(
        RejectReason.INVALID_JSON, "d" * 5000, b"\x01" * 10_000, key, "posts.raw", 2, 7, max_message_bytes=3000
    )
    letter = DeadLetter.model_validate_json(outgoing.value)
    assert outgoing.size <= message_budget(3000)
    assert (letter.payload_base64, letter.key, letter.payload_size, letter.key_size) == ("", None, 10_000, len(key))
    assert (letter.source_topic, letter.partition, letter.offset, letter.reason) == (
        "posts.raw",
        2,
        7,
        RejectReason.INVALID_JSON,
    )


def test_a_post_at_the_length_limit_with_the_largest_fields_gives_a_result_that_fits() -> None:
    """Control characters are the costliest text (6 bytes each in JSON); authors and ids at their maximum."""
    limit = Settings.model_fields["max_text_chars"].metadata[-1].le
    post = Post(id="i" * 128, author="\u0001" * 128, source="\u0002" * 64, text="x" + "\u0001" * (limit - 1))
    result = SentimentResult(
        post_id=post.id,
        author=post.author,
        source=post.source,
        text=post.text,
        label="NEUTRAL",
        score=0.5,
        model="m" * 200,
        created_at=1.0,
        produced_at=1.0,
        processed_at=1.0,
    )
    assert encode_result(result).size <= message_budget(DEFAULT_MAX_MESSAGE_BYTES)
    with pytest.raises(ResultTooLarge):
        encode_result(result, max_message_bytes=len(result.to_bytes()))
