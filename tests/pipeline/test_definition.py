"""What happens to a message, in-process: the pipeline's definitions driven through Quix's ``StreamingDataFrame.test``.

The real ``ClassifierSink`` with the real tiny Flair model, a real ``PoisonGate`` over a ledger on disk, and the
statistics' real windows (RocksDB in the test's directory); no broker. What the pipeline would produce is recorded
instead of sent: results and dead letters through ``Outputs``, statistics from the application's producer. Each
message carries its topic, partition and offset in a ``MessageContext``, as when Quix consumes it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic, TopicConfig
from quixstreams.models.messagecontext import MessageContext

from common.contract import Post, RejectReason, SentimentResult, SentimentStats
from pipeline.classifier_sink import ClassifierSink
from pipeline.definition import Accepted, PostRules, Rejected, check_post, define_classification, define_statistics
from pipeline.outputs import Outputs, Source
from pipeline.poison import InFlight, Ledger, PoisonGate
from pipeline.results_codec import validate_result
from sentiment_model.classifier import SentimentClassifier
from tests.pipeline.test_classifier_sink import Written

POSTS, RESULTS, STATS = "posts.raw", "results", "stats"
LIMIT = 280
RULES = PostRules(LIMIT, frozenset({"en"}))
KAFKA_TIME_MS = 1_700_000_000_123
CRASH_LIMIT = 3
WINDOW_S, GRACE_S = 60, 10


def single_partition_topic(name: str, **serialization: Any) -> Topic:
    """A topic as Quix would have described it after asking the broker: one partition (so no repartitioning)."""
    topic = Topic(name, **serialization)
    topic.broker_config = TopicConfig(
        num_partitions=1, replication_factor=1, extra_config={"retention.ms": "-1", "retention.bytes": "-1"}
    )
    return topic


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Application]:
    """An application that never reaches a broker: its windows' state is local, nothing is produced to Kafka."""
    application = Application(
        broker_address="127.0.0.1:1",
        consumer_group="definition-test",
        state_dir=tmp_path / "state",
        use_changelog_topics=False,
        loglevel=None,
    )
    yield application
    application._state_manager.close()


def feed(
    sdf: StreamingDataFrame,
    value: Any,
    key: bytes | None,
    offset: int,
    topic: str = POSTS,
    timestamp_ms: int = 1_700_000_000_000,
) -> list[Any]:
    return sdf.test(value, key, timestamp_ms, ctx=MessageContext(topic, 0, offset, size=0))


# --- check_post -----------------------------------------------------------------------------------------


def source(raw: bytes | None, key: bytes | None = b"ada", offset: int = 7, author: str | None = None) -> Source:
    return Source(raw, key, POSTS, 2, offset, author)


@pytest.mark.parametrize("key", [b"ada", None, b""])
def test_a_valid_post_is_accepted_keyed_or_not_with_where_it_came_from_and_its_author(key: bytes | None) -> None:
    post = Post(author="ada", source="twitter", text="What a lovely morning")
    checked = check_post(source(post.to_bytes(), key), KAFKA_TIME_MS, RULES)
    assert checked == Accepted(post, source(post.to_bytes(), key, author="ada"))


@pytest.mark.parametrize("lang", ["en", "en-GB", "EN", "und", None])
def test_a_post_in_a_language_the_model_reads_or_an_unknown_one_is_accepted(lang: str | None) -> None:
    raw = Post(author="ada", source="x", text="hi", lang=lang).to_bytes()
    checked = check_post(source(raw), KAFKA_TIME_MS, RULES)
    assert isinstance(checked, Accepted) and checked.post.lang == lang


@pytest.mark.parametrize("key", [b"ada", None])
def test_a_post_in_another_language_is_rejected_naming_it_and_keeps_its_author(key: bytes | None) -> None:
    raw = Post(author="ada", source="x", text="Guten Morgen", lang="de-AT").to_bytes()
    checked = check_post(source(raw, key), KAFKA_TIME_MS, RULES)
    assert checked == Rejected(
        RejectReason.UNSUPPORTED_LANGUAGE,
        "the post's language is 'de-AT'; the model reads only en (SENTISTREAM_MODEL_LANGUAGES)",
        source(raw, key, author="ada"),
    )
    assert isinstance(check_post(source(raw, key), KAFKA_TIME_MS, PostRules(LIMIT, frozenset({"en", "de"}))), Accepted)


def test_a_post_without_created_at_was_created_at_its_messages_kafka_timestamp() -> None:
    raw = json.dumps({"author": "ada", "source": "kcat", "text": "hi"}).encode()
    checked = check_post(source(raw, None), KAFKA_TIME_MS, RULES)
    assert isinstance(checked, Accepted) and checked.post.created_at == KAFKA_TIME_MS / 1000


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        (b'{"source": "x", "text": "no author, no key"}', None, RejectReason.MISSING_FIELD),
        (b'{"source": "x", "text": "no author"}', b"ada", RejectReason.MISSING_FIELD),
        (b"{broken", b"ada", RejectReason.INVALID_JSON),
        (Post(author="ada", source="x", text="y" * (LIMIT + 1)).to_bytes(), b"ada", RejectReason.TEXT_TOO_LONG),
        (Post(author="ada", source="x", text="y" * (LIMIT + 1)).to_bytes(), None, RejectReason.TEXT_TOO_LONG),
        (None, None, RejectReason.EMPTY_PAYLOAD),
    ],
)
def test_an_invalid_message_is_rejected_with_its_reason_and_source(
    raw: bytes | None, key: bytes | None, reason: RejectReason
) -> None:
    checked = check_post(source(raw, key), KAFKA_TIME_MS, RULES)
    assert isinstance(checked, Rejected)
    assert (checked.reason, checked.source) == (reason, source(raw, key))
    assert checked.detail
    if reason is RejectReason.MISSING_FIELD:
        assert checked.detail.startswith("author: ")


# --- define_classification ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> SentimentClassifier:
    return SentimentClassifier.load(str(tiny_model_path), torch_threads=1)


class Classification:
    """The classification definition on a single-partition raw topic, writing into ``written``."""

    def __init__(self, app: Application, model: SentimentClassifier, gate: PoisonGate):
        self.written = Written()
        outputs = Outputs(self.written, RESULTS, "dead-letters", {RESULTS: 1_000_000, "dead-letters": 1_000_000})
        self.sink = ClassifierSink(model, outputs, model_batch_size=4)
        posts = single_partition_topic(POSTS, value_deserializer="bytes", key_deserializer="bytes")
        self.sdf = define_classification(app.dataframe(posts), self.sink, outputs, gate, RULES)


def gate_with_poison(tmp_path: Path, poisoned: list[str], in_flight: InFlight | None = None) -> PoisonGate:
    ledger = Ledger(tmp_path / "poison" / "ledger.json")
    for message in poisoned:
        for crash in range(CRASH_LIMIT):
            ledger.record_crash(message, f"SIGSEGV #{crash + 1}")
    return PoisonGate(ledger, CRASH_LIMIT, in_flight)


def test_every_message_becomes_one_result_or_one_dead_letter_with_its_reason(
    app: Application, model: SentimentClassifier, tmp_path: Path
) -> None:
    good = [
        Post(author=f"a{i}", source="twitter", text=text)
        for i, text in enumerate(
            ["I love this so much", "This is awful and broken", "The bus comes at nine", "Best day ever!!!"]
        )
    ]
    poisoned = Post(author="mallory", source="twitter", text="Perfectly valid, but it crashed three workers")
    german = Post(author="hans", source="twitter", text="Was für ein schöner Morgen", lang="de")
    messages: list[tuple[bytes | None, bytes | None]] = [
        (good[0].to_bytes(), b"a0"),
        (b"{broken", b"k"),  # offset 1
        (good[1].to_bytes(), b"a1"),
        (poisoned.to_bytes(), b"mallory"),  # offset 3, set aside as poison
        (good[2].to_bytes(), None),  # offset 4, no key: scored, keyed by its author
        (Post(author="b", source="x", text="z" * (LIMIT + 1)).to_bytes(), b"b"),  # offset 5
        (good[3].to_bytes(), b"a3"),
        (None, b"k"),  # offset 7, a tombstone
        (german.to_bytes(), None),  # offset 8
    ]
    classification = Classification(app, model, gate_with_poison(tmp_path, [f"{POSTS}[0]@3"]))
    for offset, (value, key) in enumerate(messages):
        feed(classification.sdf, value, key, offset)
    written = classification.written
    assert written.results() == [], "nothing is scored before the checkpoint flushes the sink"
    classification.sink.flush()

    letters = {letter.offset: letter for letter in written.dead_letters()}
    assert {offset: letter.reason for offset, letter in letters.items()} == {
        1: RejectReason.INVALID_JSON,
        3: RejectReason.POISON_MESSAGE,
        5: RejectReason.TEXT_TOO_LONG,
        7: RejectReason.EMPTY_PAYLOAD,
        8: RejectReason.UNSUPPORTED_LANGUAGE,
    }
    assert letters[3].detail == "crashed a worker 3 times; last: SIGSEGV #3"
    for offset, letter in letters.items():
        assert (letter.source_topic, letter.partition) == (POSTS, 0) and letter.detail
        assert base64.b64decode(letter.payload_base64) == (messages[offset][0] or b"")

    letter_keys = [key for topic, key, _ in written.messages if topic == "dead-letters"]
    assert letter_keys == [b"k", b"mallory", b"b", b"k", b"hans"], "the unkeyed post's letter: keyed by its author"

    scored = good
    results = written.results()
    assert [r.post_id for r in results] == [post.id for post in scored], "one result per good post, in order"
    alone = {post.text: model.predict([post.text])[0] for post in scored}
    assert [(r.label, round(r.score, 4)) for r in results] == [
        (alone[p.text].label, round(alone[p.text].score, 4)) for p in scored
    ]
    assert [key for topic, key, _ in written.messages if topic == RESULTS] == [p.author.encode() for p in scored]


def test_in_careful_mode_each_message_is_noted_in_flight_before_it_is_processed(
    app: Application, model: SentimentClassifier, tmp_path: Path
) -> None:
    in_flight = InFlight(tmp_path / "in-flight")
    classification = Classification(app, model, gate_with_poison(tmp_path, [], in_flight))
    for offset in (11, 12):
        post = Post(author="ada", source="twitter", text=f"Post number {offset}")
        feed(classification.sdf, post.to_bytes(), b"ada", offset)
        assert in_flight.take() == [f"{POSTS}[0]@{offset}"]


# --- define_statistics ----------------------------------------------------------------------------------


class Statistics:
    """The statistics definition on a single-partition results topic; what it produces is recorded."""

    def __init__(self, app: Application):
        self.dead_letters: list[tuple[RejectReason, str, Source]] = []
        self.produced: list[dict[str, Any]] = []
        app._processing_context.producer.produce = lambda **message: self.produced.append(message)
        results = single_partition_topic(RESULTS)
        stats = single_partition_topic(STATS, value_serializer="json", key_serializer="str")
        self.sdf = define_statistics(app.dataframe(results), stats, self, WINDOW_S, GRACE_S)
        # What Quix does when the worker is assigned partition 0: a checkpoint, the window stores opened.
        app._processing_context.init_checkpoint()
        for stream_id in app._state_manager.stores:
            app._state_manager.on_partition_assign(stream_id=stream_id, partition=0, committed_offsets={RESULTS: -1001})
        self.offset = 0

    def dead_letter(self, reason: RejectReason, detail: str, source: Source) -> None:
        self.dead_letters.append((reason, detail, source))

    def result(self, source: str, label: str, score: float, created_at: float) -> None:
        """A result as the deserializer hands it over, at its event time (the post's creation)."""
        result = SentimentResult(
            post_id=f"p{self.offset}",
            author="ann",
            source=source,
            text="t",
            label=label,
            score=score,
            model="tiny",
            created_at=created_at,
            produced_at=created_at,
            processed_at=created_at,
        )
        self.record(validate_result(result.to_bytes()), source.encode(), int(created_at * 1000))

    def record(self, value: Any, key: bytes | None, timestamp_ms: int) -> None:
        feed(self.sdf, value, key, self.offset, RESULTS, timestamp_ms)
        self.offset += 1

    def windows(self) -> list[SentimentStats]:
        assert {(m["topic"], m["key"]) for m in self.produced} <= {(STATS, s.encode()) for s in ("twitter", "reddit")}
        return [SentimentStats.model_validate_json(message["value"]) for message in self.produced]


def test_windows_count_each_label_per_source_and_close_on_event_time(app: Application) -> None:
    statistics = Statistics(app)
    start = 1_700_000_040.0  # on a window boundary
    for source, label, score, second in [
        ("twitter", "POSITIVE", 0.9, 1),
        ("twitter", "NEGATIVE", 0.5, 30),
        ("reddit", "NEUTRAL", 0.6, 2),
        ("twitter", "POSITIVE", 0.7, 59),
        ("twitter", "NEUTRAL", 0.8, 61),
    ]:
        statistics.result(source, label, score, start + second)
    assert statistics.windows() == [], "no window closes before event time passes its end and the grace"
    statistics.result("twitter", "POSITIVE", 1.0, start + WINDOW_S + GRACE_S)  # closes twitter's first window
    statistics.result("reddit", "NEGATIVE", 0.4, start + 2 * WINDOW_S + GRACE_S)  # closes reddit's first

    assert [
        (w.source, w.window_start, w.window_end, w.count, w.label_counts, w.mean_score) for w in statistics.windows()
    ] == [
        ("twitter", start, start + WINDOW_S, 3, {"POSITIVE": 2, "NEGATIVE": 1}, pytest.approx((0.9 + 0.5 + 0.7) / 3)),
        ("reddit", start, start + WINDOW_S, 1, {"NEUTRAL": 1}, pytest.approx(0.6)),
    ]
    assert statistics.dead_letters == []


def test_a_result_later_than_the_grace_is_left_out_of_its_closed_window(app: Application) -> None:
    statistics = Statistics(app)
    start = 1_700_000_040.0
    statistics.result("twitter", "POSITIVE", 0.9, start + 1)
    statistics.result("twitter", "POSITIVE", 0.9, start + WINDOW_S + GRACE_S)  # closes the first window
    statistics.result("twitter", "NEGATIVE", 0.1, start + 2)  # too late for it
    statistics.result("twitter", "POSITIVE", 0.9, start + 3 * WINDOW_S + GRACE_S)  # closes the second
    assert [(w.window_start, w.count, w.label_counts) for w in statistics.windows()] == [
        (start, 1, {"POSITIVE": 1}),
        (start + WINDOW_S, 1, {"POSITIVE": 1}),
    ]


def test_anything_on_the_results_topic_that_is_not_a_result_is_dead_lettered_not_windowed(app: Application) -> None:
    statistics = Statistics(app)
    foreign = json.dumps({"post_id": "p", "label": "HAPPY"}).encode()
    statistics.record(validate_result(foreign), b"mallory", 1_700_000_000_000)
    statistics.record(None, b"tombstone", 1_700_000_000_000)  # Quix skips the deserializer for a null value
    statistics.result("twitter", "POSITIVE", 0.9, 1_700_000_041.0)
    statistics.result("twitter", "POSITIVE", 0.9, 1_700_000_041.0 + WINDOW_S + GRACE_S)

    [(first, first_detail, first_source), (second, second_detail, second_source)] = statistics.dead_letters
    assert (first, second) == (RejectReason.INVALID_RESULT, RejectReason.INVALID_RESULT)
    assert (
        first_detail.startswith("not a sentiment result: ")
        and second_detail == "message has no value (null or zero bytes)"
    )
    assert first_source == Source(foreign, b"mallory", RESULTS, 0, 0)
    assert second_source == Source(None, b"tombstone", RESULTS, 0, 1)
    assert [(w.count, w.label_counts) for w in statistics.windows()] == [(1, {"POSITIVE": 1})]
