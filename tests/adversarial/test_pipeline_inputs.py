"""Raw messages at Kafka's size limits, and Hypothesis-generated ones, through the running pipeline (issue 8).

No single message may stop the pipeline. Each test starts the real pipeline (its supervisor and one classifier
worker with the real tiny Flair model) on the real broker, sends its messages, and proves for every raw offset:
exactly one result or one dead letter, the one validation decides; each dead letter small enough to be written
and telling the whole original though it keeps only a prefix; the worker never restarted (a message that kills
it kills it again at every restart), its group caught up, and nothing was logged as an error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from common.contract import (
    KEY_PREFIX_BYTES,
    MAX_CREATED_AT,
    MAX_DEAD_LETTER_KAFKA_KEY,
    MAX_DEAD_LETTER_KEY,
    MAX_DEAD_LETTER_PAYLOAD,
    MIN_CREATED_AT,
    DeadLetter,
    Post,
    RejectReason,
    SentimentResult,
    message_budget,
)
from common.settings import Settings
from pipeline.definition import Accepted, PostRules, check_post
from pipeline.outputs import Source
from tests.faults.support import (
    log_problems,
    pipeline_workers,
    read_all,
    wait_for,
    wait_for_workers,
    wait_until_caught_up,
)
from tests.processes import running

R = RejectReason
T = TypeVar("T")


# --- sending raw messages, and what came of them -------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A message for a topic, as bytes; ``compressed`` ones are sent with lz4."""

    key: bytes | None
    value: bytes | None
    compressed: bool = False

    def __repr__(self) -> str:  # some are megabytes
        return f"Raw(key={self.key!r:.80}, value={self.value!r:.120}, compressed={self.compressed})"


Origin = tuple[int, int]  # the partition and offset of a message


@dataclass(frozen=True)
class Delivery:
    raw: Raw
    partition: int
    offset: int
    timestamp_ms: int
    error: KafkaError | None  # the broker refused it


# The broker, not our producer, is to judge sizes: above our largest message (8 MB uncompressed).
CLIENT_MESSAGE_MAX_BYTES = 64 * 1024 * 1024


def send_each_alone(settings: Settings, topic: str, messages: list[Raw]) -> list[Delivery]:
    """Each message in a batch of its own (flushed before the next), so the broker measures that message alone."""
    producers = {
        compressed: Producer(
            {
                **settings.kafka_client_config(),
                "message.max.bytes": CLIENT_MESSAGE_MAX_BYTES,
                "linger.ms": 0,
                "compression.type": "lz4" if compressed else "none",
            }
        )
        for compressed in (False, True)
    }
    deliveries: list[Delivery] = []
    for raw in messages:

        def note(error: KafkaError | None, message: Message, raw: Raw = raw) -> None:
            deliveries.append(Delivery(raw, message.partition(), message.offset(), message.timestamp()[1], error))

        producers[raw.compressed].produce(topic, key=raw.key, value=raw.value, on_delivery=note)
        assert producers[raw.compressed].flush(30) == 0, f"no delivery report for {raw}"
    return deliveries


def max_message_bytes(settings: Settings, topic: str) -> int:
    """The topic's max.message.bytes, as the broker reports it."""
    admin = AdminClient(settings.kafka_client_config())  # kept alive until the answer is in
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return int(future.result(timeout=15)["max.message.bytes"].value)


def dead_letter_budget(settings: Settings) -> int:
    """Bytes of key plus value a dead letter may have: the pipeline's producer limit or the topic's, the smaller."""
    return message_budget(min(settings.message_max_bytes, max_message_bytes(settings, settings.topic_dead_letters)))


@dataclass(frozen=True)
class PipelineRun:
    deliveries: list[Delivery]
    workers_before: dict[int, str]
    workers_after: dict[int, str]
    log: Path

    def assert_steady(self) -> None:
        """No worker restarted, and the log (to the clean stop) reports no error."""
        assert self.workers_after == self.workers_before, f"a worker restarted on a message; log: {self.log}"
        assert not log_problems(self.log), f"errors logged: {log_problems(self.log)[:5]}"


def run_pipeline(
    settings: Settings,
    log: Path,
    arguments: list[str],
    topic: str,
    messages: list[Raw],
    caught_up: Callable[[], object],
) -> PipelineRun:
    """``messages`` sent to ``topic``, then ``python -m pipeline *arguments`` (one worker) until ``caught_up`` returns.

    Sent first, they are a backlog: the worker reads them in bursts, and writes its outputs in bursts, as it does
    after any pause."""
    deliveries = send_each_alone(settings, topic, messages)
    with running(settings, "pipeline", *arguments, log=log) as pipeline:
        workers = wait_for_workers(pipeline, 1)
        caught_up()
        after = pipeline_workers(pipeline)
    assert pipeline.returncode == 0, f"the pipeline did not stop cleanly; log: {log}"
    return PipelineRun(deliveries, workers, after, log)


def run_classifier(settings: Settings, log: Path, messages: list[Raw]) -> PipelineRun:
    """The pipeline's classifier worker (no statistics) until its group has committed every raw message sent."""

    def caught_up() -> None:
        wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=300)

    return run_pipeline(settings, log, ["--workers", "1", "--no-stats"], settings.topic_posts, messages, caught_up)


def dead_letters_by_origin(settings: Settings, source_topic: str) -> dict[Origin, list[tuple[Message, DeadLetter]]]:
    """Every dead letter (as written, and parsed) by the partition and offset of ``source_topic`` it is about."""
    letters = defaultdict(list)
    for message in read_all(settings, settings.topic_dead_letters):
        letter = DeadLetter.model_validate_json(message.value())
        assert letter.source_topic == source_topic, letter
        letters[(letter.partition, letter.offset)].append((message, letter))
    return dict(letters)


def results(settings: Settings) -> list[SentimentResult]:
    return [SentimentResult.model_validate_json(m.value()) for m in read_all(settings, settings.topic_results)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_tells_the_whole_original(
    message: Message, letter: DeadLetter, raw: Raw, budget: int, author: str | None = None
) -> None:
    """The dead letter fits in ``budget`` bytes, describes the whole original, and keeps as much of it as fits: all
    of it (up to MAX_DEAD_LETTER_PAYLOAD) or a prefix with no room left for 3 more bytes (4 in base64). Only a key
    whose text alone would not fit may bring the letter down to its minimal form (no key text, no payload). It is
    keyed by the original key, or by ``author`` (its post's, once read) when the original had none."""
    size = len(message.key() or b"") + len(message.value())
    assert size <= budget, f"dead letter of {raw}: {size} bytes, over the {budget} bytes it may have"
    original = raw.value or b""
    kept = base64.b64decode(letter.payload_base64)
    assert original.startswith(kept) and len(kept) <= MAX_DEAD_LETTER_PAYLOAD, f"{raw}: kept bytes are not its prefix"
    assert letter.payload_truncated == (len(kept) < len(original)), raw
    assert (letter.payload_size, letter.payload_sha256) == (len(original), sha256(original)), raw
    whole_key = (None, None) if raw.key is None else (len(raw.key), sha256(raw.key))
    assert (letter.key_size, letter.key_sha256) == whole_key, raw
    key_text = raw.key.decode("utf-8", "replace")[:MAX_DEAD_LETTER_KEY] if raw.key else None
    if key_text and letter.key is None:
        key_text_bytes = len(json.dumps(key_text, ensure_ascii=False).encode())
        assert size + key_text_bytes > budget, f"{raw}: minimal letter, though its key's text fits"
    else:
        assert letter.key == key_text, raw
        fits_more = len(kept) < min(len(original), MAX_DEAD_LETTER_PAYLOAD) and size + 4 <= budget
        assert not fits_more, f"{raw}: kept {len(kept)} of {len(original)} bytes in {size}, though {budget} fit"
    routing = raw.key if raw.key or author is None else author.encode()
    if routing is None or len(routing) <= MAX_DEAD_LETTER_KAFKA_KEY:
        assert message.key() == routing, f"{raw}: the dead letter is not keyed by the original key or the author"
    else:
        assert message.key().startswith(routing[:KEY_PREFIX_BYTES]) and message.key().endswith(sha256(routing).encode())
        assert len(message.key()) <= MAX_DEAD_LETTER_KAFKA_KEY, f"{raw}: dead letter key of {len(message.key())} bytes"


# --- a. sizes at the broker's limits ---------------------------------------------------------------

RECORD_BATCH_OVERHEAD = 61  # the header of a Kafka record batch (format v2)


def _varint_size(number: int) -> int:
    zigzag, size = (number << 1) ^ (number >> 63), 1
    while zigzag >= 0x80:
        zigzag, size = zigzag >> 7, size + 1
    return size


def batch_size(key: int | None, value: int | None) -> int:
    """Bytes of an uncompressed batch of one record of these key and value lengths (None: null), no headers:
    what the broker compares with the topic's max.message.bytes."""

    def field(length: int | None) -> int:
        return _varint_size(-1) if length is None else _varint_size(length) + length

    record = 3 + field(key) + field(value) + 1  # attributes, timestamp and offset deltas; key, value; no headers
    return RECORD_BATCH_OVERHEAD + _varint_size(record) + record


def filler(batch_bytes: int, beside: bytes | None) -> int:
    """The length of a key (or value) that, beside this value (or key), makes a batch of exactly ``batch_bytes``."""
    other = None if beside is None else len(beside)
    start = batch_bytes - RECORD_BATCH_OVERHEAD - (other or 0) - 16
    return next(n for n in range(start, batch_bytes) if batch_size(n, other) == batch_bytes)


RESULT, REFUSED = "result", "refused"


@dataclass(frozen=True)
class Case:
    name: str
    raw: Raw
    expected: RejectReason | Literal["result", "refused"]  # its dead letter's reason, a result, or the broker's refusal


def post(text: str) -> bytes:
    return Post(author="ada", source="boundary", text=text).to_bytes()


def boundary_cases(limit: int, max_text_chars: int) -> list[Case]:
    """Random (incompressible) messages just under, at and over the broker's ``limit``; compressible ones far over it
    uncompressed; and what makes the largest dead letters: huge keys, non-UTF-8, NUL bytes (six bytes each in JSON)."""
    cases = []
    for delta, where in ((-1, "under"), (0, "at"), (1, "over")):
        size = limit + delta
        valid = post(("Good \x00 day 😀 " * max_text_chars)[:max_text_chars])  # a post id of its own, for its result
        too_long = post("x" * (max_text_chars + 1))
        refused = size > limit
        cases += [
            Case(
                f"random value {where} the limit",
                Raw(b"ada", os.urandom(filler(size, b"ada"))),
                REFUSED if refused else R.INVALID_UTF8,
            ),
            Case(
                f"random value {where} the limit, no key",
                Raw(None, os.urandom(filler(size, None))),
                REFUSED if refused else R.INVALID_UTF8,
            ),
            Case(
                f"random key {where} the limit, a valid post at max_text_chars",
                Raw(os.urandom(filler(size, valid)), valid),
                REFUSED if refused else RESULT,
            ),
            Case(
                f"random key {where} the limit, a post over max_text_chars",
                Raw(os.urandom(filler(size, too_long)), too_long),
                REFUSED if refused else R.TEXT_TOO_LONG,
            ),
            Case(
                f"random key {where} the limit, null value",
                Raw(os.urandom(filler(size, None)), None),
                REFUSED if refused else R.EMPTY_PAYLOAD,
            ),
        ]
    # Each of their dead letters fits any limit; together they may not: the producer batches what it writes.
    cases += [
        Case(f"small non-JSON message {index} of a burst", Raw(b"ada", b"not JSON %d" % index), R.INVALID_JSON)
        for index in range(20)
    ]
    mb = 1024 * 1024
    return [
        *cases,
        Case(
            "random 760 KB key, random 260 KB value (crash-looped the old pipeline)",
            Raw(os.urandom(760 * 1024), os.urandom(260 * 1024)),
            R.INVALID_UTF8,
        ),
        Case("random 990 KB key, tiny value", Raw(os.urandom(990 * 1024), b"{}"), R.MISSING_FIELD),
        Case(
            "random 500 KB key, 500 KB of NUL bytes", Raw(os.urandom(500 * 1024), b"\x00" * 500 * 1024), R.INVALID_JSON
        ),
        Case("5 MB compressible key, 3 MB compressible value", Raw(b"k" * 5 * mb, b"x" * 3 * mb, True), R.INVALID_JSON),
        Case("5 MB key and 3 MB value of NUL bytes", Raw(b"\x00" * 5 * mb, b"\x00" * 3 * mb, True), R.INVALID_JSON),
        Case("4 MB compressible key, a valid post", Raw(b"a" * 4 * mb, post("What a lovely day"), True), RESULT),
        Case("a post whose text is 3 MB", Raw(b"ada", post("y" * 3 * mb), True), R.TEXT_TOO_LONG),
        # Valid JSON (a number), but more digits than Python's int() takes (sys.get_int_max_str_digits()).
        Case("3 MB of ASCII digits", Raw(b"ada", b"7" * 3 * mb, True), R.INVALID_JSON),
    ]


# The dead letters' limit, set on either side: the producer's message.max.bytes at its least, far under a letter that
# keeps 256 KiB, so every letter must shrink its payload; or the topic's max.message.bytes, which may be lower still:
# at 6,000 bytes a preview of NUL bytes (six bytes each in JSON) must go, and a key of them leaves room for nothing
# but the minimal letter.
DEAD_LETTER_LIMITS = {"producer message.max.bytes": 64 * 1024, "dead-letter topic max.message.bytes": 6000}


@pytest.fixture(params=sorted(DEAD_LETTER_LIMITS))
def boundary_settings(request: pytest.FixtureRequest, settings: Settings, tiny_model_path: Path) -> Settings:
    settings = settings.model_copy(
        update={"model": str(tiny_model_path), "batch_size": 16, "batch_max_wait_ms": 50, "max_text_chars": 5000}
    )
    limit = DEAD_LETTER_LIMITS[request.param]
    if request.param.startswith("producer"):
        return settings.model_copy(update={"message_max_bytes": limit})
    entry = ConfigEntry("max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topic_dead_letters, incremental_configs=[entry])
    admin = AdminClient(settings.kafka_client_config())
    (future,) = admin.incremental_alter_configs([resource]).values()
    future.result(timeout=15)
    wait_for(lambda: max_message_bytes(settings, settings.topic_dead_letters) == limit, 15, "the topic's new limit")
    return settings


def test_messages_at_kafkas_size_limits_each_get_one_outcome_that_fits(
    boundary_settings: Settings, tmp_path: Path
) -> None:
    """Over the broker's limit: refused (the producer's delivery report says so), and nothing else happens. Anything
    the broker took, however large its key or value: one result or one dead letter with its reason, every letter
    within the dead-letter budget, and written without a refusal even in the bursts the worker writes them in."""
    settings = boundary_settings
    cases = boundary_cases(max_message_bytes(settings, settings.topic_posts), settings.max_text_chars)
    run = run_classifier(settings, tmp_path / "pipeline.log", [case.raw for case in cases])

    sent = list(zip(cases, run.deliveries, strict=True))
    refusals = {case.name: delivery.error.code() for case, delivery in sent if delivery.error}
    assert refusals == {case.name: KafkaError.MSG_SIZE_TOO_LARGE for case in cases if case.expected == REFUSED}
    taken = [(case, delivery) for case, delivery in sent if not delivery.error]
    raw_topic = {(m.partition(), m.offset()): (m.key(), m.value()) for m in read_all(settings, settings.topic_posts)}
    assert raw_topic == {(d.partition, d.offset): (case.raw.key, case.raw.value) for case, d in taken}

    letters = dead_letters_by_origin(settings, settings.topic_posts)
    results_by_post = defaultdict(list)
    for result in results(settings):
        results_by_post[result.post_id].append(result)
    outcomes = {}
    for case, delivery in taken:
        got = [letter.reason for _message, letter in letters.get((delivery.partition, delivery.offset), [])]
        if case.expected == RESULT:
            post_sent = Post.model_validate_json(case.raw.value)
            got += [RESULT for result in results_by_post[post_sent.id] if result.text == post_sent.text]
        outcomes[case.name] = got
    assert outcomes == {case.name: [case.expected] for case, _delivery in taken}, "one outcome each, the right one"
    outputs = sum(map(len, letters.values())) + sum(map(len, results_by_post.values()))
    assert outputs == len(taken), "outputs for no message"

    budget = dead_letter_budget(settings)
    origins = {(delivery.partition, delivery.offset): case.raw for case, delivery in taken}
    for origin, [(message, letter)] in letters.items():
        assert_tells_the_whole_original(message, letter, origins[origin], budget)
    run.assert_steady()


# --- b. Hypothesis-generated raw messages ---------------------------------------------------------

POST_FIELDS = ("schema_version", "id", "author", "source", "text", "created_at", "lang")
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
CONTROL = "".join(map(chr, range(0x20))) + "\x7f"
ABSENT = object()

any_text = st.text(st.characters(exclude_categories=()), max_size=20)  # lone surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=8,
)
any_keys = st.none() | st.binary(max_size=64)
post_keys = st.binary(min_size=1, max_size=64) | st.text(min_size=1, max_size=20).map(str.encode)
words = st.text(st.characters(categories=["L"]), min_size=1, max_size=12)
visible = st.characters(categories=["L", "N", "P", "S"])
blanks = st.text(" \t\n\r\u3000\u00a0", min_size=1, max_size=3)
controls = st.text(CONTROL, min_size=1)
hebrew_and_arabic = st.characters(categories=["L", "M", "Zs"], min_codepoint=0x0590, max_codepoint=0x08FF)
emoji = st.characters(categories=["So"], min_codepoint=0x1F300, max_codepoint=0x1FAFF)
json_objects = st.dictionaries(st.sampled_from(POST_FIELDS) | any_text, json_values, max_size=8)
authors = st.text(min_size=1, max_size=128)


def encoded(document: object) -> st.SearchStrategy[bytes]:
    """JSON as a producer might write it: ASCII-escaped or not (a lone surrogate then makes it invalid UTF-8)."""
    return st.booleans().map(
        lambda ascii_only: json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    )


def posts(text: st.SearchStrategy[str], author: st.SearchStrategy[str] = authors) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"author": author, "source": st.text(min_size=1, max_size=64), "text": text},
        optional={
            "schema_version": st.just(1),
            "id": st.text(min_size=1, max_size=128),
            "created_at": st.floats(MIN_CREATED_AT, MAX_CREATED_AT),
            "lang": st.sampled_from(["en", "en-GB", "EN-us", "und", None]),  # what the English model reads
        },
    )


def odd_valid_texts(max_text_chars: int) -> dict[str, st.SearchStrategy[str]]:
    """Legal texts of many odd kinds: each has a visible character and at most ``max_text_chars`` of them."""

    def between(marks: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return words.flatmap(
            lambda word: st.lists(marks, min_size=len(word), max_size=len(word)).map(
                lambda inserted: "".join(char + mark for char, mark in zip(word, inserted, strict=True))
            )
        )

    return {
        "zero-width characters between letters": between(st.sampled_from(ZERO_WIDTH)),
        "spaces, tabs and newlines around it": st.tuples(blanks, words, blanks, words, blanks).map("".join),
        "right-to-left script": st.text(hebrew_and_arabic, max_size=40).map(lambda text: f"\u05d0{text}\u200f\u0627"),
        "emoji only": st.text(emoji, min_size=1, max_size=20),
        "combining marks": between(st.text(st.characters(categories=["Mn"]), min_size=1, max_size=3)),
        "NUL and control characters inside a visible text": st.tuples(words, controls, words).map("".join),
        "text at exactly max_text_chars": st.text(visible, min_size=1, max_size=20).map(
            lambda unit: (unit * max_text_chars)[:max_text_chars]
        ),
    }


def wrong_values(field: str, max_text_chars: int) -> st.SearchStrategy[object]:
    """What a producer may put in a post's ``field`` instead of what belongs there (ABSENT: leaves it out)."""
    edges = {
        "schema_version": st.sampled_from([0, 2, "1", 1.0, True, None]),
        "id": st.sampled_from(["", "i" * 129]),
        "author": st.sampled_from(["", "a" * 129, "\ud800"]),
        "source": st.sampled_from(["", "s" * 65]),
        "text": st.sampled_from(["", " \t\n\u3000", ZERO_WIDTH, CONTROL, "x" * (max_text_chars + 1), "a \udc00 b"]),
        "created_at": st.sampled_from([-1, 0, 1e-9, MAX_CREATED_AT * 2, "2026-01-01T00:00:00Z", True]) | st.floats(),
        "lang": st.sampled_from(["", "en_US", "e", "en-" + "x" * 40, "de", "pt-BR", "english", 5]),
    }
    return edges[field] | json_values | st.just(ABSENT)


def with_field(document: dict, field: str, value: object) -> dict:
    return {k: v for k, v in {**document, field: value}.items() if v is not ABSENT}


def raw_message_kinds(max_text_chars: int) -> dict[str, st.SearchStrategy[Raw]]:
    """Every kind of raw message the test sends, by name: garbage, posts with one thing wrong, odd but valid posts."""
    plain_text = st.tuples(visible, st.text(max_size=40)).map("".join)
    kinds = {
        "random bytes": st.builds(Raw, any_keys, st.none() | st.binary(max_size=300)),
        "random JSON value": st.builds(Raw, any_keys, json_values.flatmap(encoded)),
        "random JSON object": st.builds(Raw, any_keys, json_objects.flatmap(encoded)),
        "near post, no key": st.builds(Raw, st.sampled_from([None, b""]), posts(plain_text).flatmap(encoded)),
        "post in a language the model does not read, keyed or not": st.builds(
            Raw,
            st.sampled_from([None, b""]) | post_keys,
            st.builds(
                with_field, posts(plain_text), st.just("lang"), st.sampled_from(["de", "fr-CA", "zh-Hant"])
            ).flatmap(encoded),
        ),
    }
    for field in POST_FIELDS:
        wrong = st.builds(with_field, posts(plain_text), st.just(field), wrong_values(field, max_text_chars))
        kinds[f"near post, wrong {field}"] = st.builds(Raw, post_keys, wrong.flatmap(encoded))
    for name, texts in odd_valid_texts(max_text_chars).items():
        kinds[f"valid post, {name}"] = st.builds(Raw, post_keys, posts(texts).flatmap(encoded))
    authors_at_limit = st.text(min_size=1, max_size=10).map(lambda unit: (unit * 128)[:128])
    kinds["valid post, author at 128 characters"] = st.builds(
        Raw, post_keys, posts(plain_text, authors_at_limit).flatmap(encoded)
    )
    return kinds


def drawn_by_hypothesis(strategy: st.SearchStrategy[T], examples: int) -> list[T]:
    """``examples`` examples of ``strategy`` from Hypothesis's engine, to go through the pipeline as one batch.

    Hypothesis's first example is always its simplest (with max_examples=1, the only one: a degenerate batch), so
    the batch is many examples, not one example of a long list."""
    drawn: list[T] = []

    @hypothesis_settings(
        max_examples=examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def keep(example: T) -> None:
        drawn.append(example)

    keep()
    return drawn


EXAMPLES_PER_KIND = 20  # of each kind, interleaved into one batch of a few hundred messages


@pytest.fixture
def generated_settings(settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(
        update={"model": str(tiny_model_path), "batch_size": 32, "batch_max_wait_ms": 50, "max_text_chars": 280}
    )


def test_generated_raw_messages_each_get_the_outcome_validation_decides(
    generated_settings: Settings, tmp_path: Path
) -> None:
    """A few hundred generated messages of every kind: each gets exactly one outcome, the one the pure
    ``check_post`` decides for its bytes and key (its dead letter's reason, or a result with its post's text)."""
    settings = generated_settings
    by_kind = [
        [(kind, raw) for raw in drawn_by_hypothesis(strategy, EXAMPLES_PER_KIND)]
        for kind, strategy in raw_message_kinds(settings.max_text_chars).items()
    ]
    batch = [message for one_of_each in zip(*by_kind, strict=True) for message in one_of_each]
    run = run_classifier(settings, tmp_path / "pipeline.log", [raw for _kind, raw in batch])
    assert not [d for d in run.deliveries if d.error], "the broker refused a generated message"

    letters = dead_letters_by_origin(settings, settings.topic_posts)
    budget = dead_letter_budget(settings)
    rules = PostRules(settings.max_text_chars, settings.model_language_set)
    expected_results: Counter[tuple[str, str, str]] = Counter()
    legal_but_rejected, wrong = [], []
    for (kind, raw), delivery in zip(batch, run.deliveries, strict=True):
        decided = check_post(
            Source(raw.value, raw.key, settings.topic_posts, delivery.partition, delivery.offset),
            delivery.timestamp_ms,
            rules,
        )
        got = letters.pop((delivery.partition, delivery.offset), [])
        if isinstance(decided, Accepted):
            expected_results[(decided.post.author, decided.post.source, decided.post.text)] += 1
        elif kind.startswith("valid post"):
            legal_but_rejected.append((kind, raw, decided.reason))
        expected = [] if isinstance(decided, Accepted) else [decided.reason]
        if [letter.reason for _message, letter in got] != expected:
            wrong.append((kind, raw, expected, [letter.reason for _message, letter in got]))
        for message, letter in got:
            assert_tells_the_whole_original(message, letter, raw, budget, decided.source.author)
    assert not legal_but_rejected, f"legal posts rejected (kind, message, reason): {legal_but_rejected[:5]}"
    assert not wrong, f"{len(wrong)} dead letters not validation's (kind, message, expected, got): {wrong[:5]}"
    assert not letters, f"dead letters for offsets never sent: {sorted(letters)[:5]}"
    got_results = Counter((result.author, result.source, result.text) for result in results(settings))
    assert got_results == expected_results, "one result for each accepted post, and none else"
    run.assert_steady()
