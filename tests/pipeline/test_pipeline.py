"""The pipeline end to end against real Kafka and a real (tiny) Flair model, run as people run it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Message

from common.contract import LABELS, DeadLetter, Post, RejectReason, SentimentResult, SentimentStats
from common.settings import Settings
from sentiment_model.classifier import SentimentClassifier
from tests.faults.support import wait_for_workers, wait_until_statistics_caught_up
from tests.processes import running
from tests.topic_reader import read_all
from tests.topic_writer import send, send_posts

TEXTS = [
    "I absolutely love this, what a wonderful day!",
    "This is the worst service I have ever had, awful.",
    "The meeting is scheduled for 3pm on Tuesday.",
    "Great job team, really proud of you all",
    "I hate waiting in line for hours, terrible",
    "The train leaves from platform four.",
]


@pytest.fixture
def pipeline_settings(settings: Settings, tiny_model_path: Path) -> Settings:
    # Batches of up to 64 scored 4 per forward pass: the model reorders each batch by length, and every
    # result must still carry its own post's label.
    return settings.model_copy(
        update={"model": str(tiny_model_path), "batch_size": 64, "model_batch_size": 4, "batch_max_wait_ms": 50}
    )


def make_posts(count: int, **fields) -> list[Post]:
    return [
        Post(author=f"author-{i % 17}", source="twitter", text=TEXTS[i % len(TEXTS)], **fields) for i in range(count)
    ]


def results_of(settings: Settings, expected: int, timeout: float = 120) -> list[SentimentResult]:
    """The results topic once results for at least ``expected`` distinct posts are on it (repeats included)."""
    messages = read_all(settings, settings.topic_results, timeout, at_least=expected, distinct_by=post_id_of)
    return [SentimentResult.model_validate_json(m.value()) for m in messages]


def post_id_of(message: Message) -> str:
    return SentimentResult.model_validate_json(message.value()).post_id


def test_every_post_gets_exactly_one_result_from_the_real_model(
    pipeline_settings: Settings, tiny_model_path: Path
) -> None:
    posts = make_posts(300)
    send_posts(pipeline_settings, posts)
    with running(pipeline_settings, "pipeline", "--workers", "1", "--no-stats") as pipeline:
        results = results_of(pipeline_settings, len(posts))
        assert pipeline.poll() is None
    assert pipeline.returncode == 0  # SIGTERM is a clean stop

    assert Counter(r.post_id for r in results) == Counter(p.id for p in posts)
    model = SentimentClassifier.load(str(tiny_model_path))
    expected = {text: p.label for text, p in zip(TEXTS, model.predict(TEXTS), strict=True)}
    by_id = {p.id: p for p in posts}
    for result in results:
        post = by_id[result.post_id]
        assert (result.author, result.source, result.text) == (post.author, post.source, post.text)
        assert result.label == expected[result.text] and result.label in LABELS
        assert 0.0 <= result.score <= 1.0
        assert result.model == model.name
        assert post.created_at <= result.produced_at <= result.processed_at
    assert len({r.label for r in results}) >= 2, "the model should not call every text the same"


def test_bad_input_goes_to_dead_letters_with_its_reason_and_the_pipeline_keeps_going(
    pipeline_settings: Settings,
) -> None:
    good = Post(author="ada", source="twitter", text="What a lovely morning")
    bad = [
        (b"k", b"{broken json", RejectReason.INVALID_JSON),
        (b"k", b"\xc3\x28 invalid utf-8", RejectReason.INVALID_UTF8),
        (b"k", b'{"author": "ada", "source": "x", "text": 5}', RejectReason.WRONG_TYPE),
        (b"k", b'{"author": "ada", "source": "x"}', RejectReason.MISSING_FIELD),
        (b"k", b'{"author": "ada", "source": "x", "text": "   "}', RejectReason.EMPTY_TEXT),
        (b"k", json.dumps({"author": "a", "source": "x", "text": "y" * 6000}).encode(), RejectReason.TEXT_TOO_LONG),
        (
            b"k",
            b'{"schema_version": 9, "author": "a", "source": "x", "text": "hi"}',
            RejectReason.UNKNOWN_SCHEMA_VERSION,
        ),
        (b"k", None, RejectReason.EMPTY_PAYLOAD),
        (None, b'{"source": "x", "text": "neither a key nor an author"}', RejectReason.MISSING_FIELD),
        (
            b"k",
            Post(author="hans", source="x", text="Guten Morgen", lang="de").to_bytes(),
            RejectReason.UNSUPPORTED_LANGUAGE,
        ),
    ]
    with running(pipeline_settings, "pipeline", "--no-stats") as pipeline:
        send(pipeline_settings, [(key, value) for key, value, _ in bad])
        send_posts(pipeline_settings, [good])
        letters = [
            DeadLetter.model_validate_json(m.value())
            for m in read_all(pipeline_settings, pipeline_settings.topic_dead_letters, at_least=len(bad))
        ]
        results = results_of(pipeline_settings, 1)
        assert pipeline.poll() is None, "bad input must never stop the pipeline"

    assert [r.post_id for r in results] == [good.id]
    assert sorted(letter.reason for letter in letters) == sorted(reason for _, _, reason in bad)
    for letter in letters:
        assert letter.detail and letter.source_topic == pipeline_settings.topic_posts
    assert len({(letter.partition, letter.offset) for letter in letters}) == len(letters)


def test_window_statistics_agree_with_the_results(pipeline_settings: Settings) -> None:
    # All posts are sent at once, so results reach the windows out of event-time order: a wide grace.
    settings = pipeline_settings.model_copy(update={"stats_window_seconds": 60, "stats_grace_seconds": 240})
    start = (int(time.time()) // 60 - 10) * 60  # ten minutes ago, on a window boundary
    posts = [
        Post(author=f"a{i}", source=source, text=TEXTS[i % len(TEXTS)], created_at=start + offset)
        for i, (source, offset) in enumerate(
            [("twitter", s) for s in (1, 5, 30, 59, 61, 90, 119)] + [("reddit", s) for s in (2, 62, 100)]
        )
    ]
    # Later posts of each source close the earlier windows (windows close on event time).
    closers = [
        Post(author="z", source=s, text="closing the windows", created_at=start + 400) for s in ("twitter", "reddit")
    ]
    send_posts(settings, posts)
    with running(settings, "pipeline"):
        results = results_of(settings, len(posts))
        # The windows have every result before the closers come: one regrouped first would make the rest late.
        wait_until_statistics_caught_up(settings)
        send_posts(settings, closers)
        stats = [
            SentimentStats.model_validate_json(m.value()) for m in read_all(settings, settings.topic_stats, at_least=4)
        ]

    expected: dict[tuple[str, float], Counter] = {}
    for result in results:
        window = result.created_at - (result.created_at - start) % 60
        expected.setdefault((result.source, window), Counter())[result.label] += 1
    got = {(s.source, s.window_start): Counter(s.label_counts) for s in stats}
    assert got == expected
    scores = {(s.source, s.window_start): s.mean_score for s in stats}
    for (source, window), _ in expected.items():
        in_window = [r.score for r in results if r.source == source and window <= r.created_at < window + 60]
        assert scores[(source, window)] == pytest.approx(sum(in_window) / len(in_window))
    assert all(s.window_end - s.window_start == 60 for s in stats)


def test_a_worker_killed_mid_stream_is_restarted_and_no_post_is_lost(pipeline_settings: Settings) -> None:
    posts = make_posts(1000)
    with running(pipeline_settings, "pipeline", "--workers", "2", "--no-stats") as supervisor:
        send_posts(pipeline_settings, posts)
        # Wait until both workers are busy, then kill one the hard way.
        workers = wait_for_workers(supervisor, 2)
        results_of(pipeline_settings, 200, timeout=180)  # two workers loading the model on two cores
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        results = results_of(pipeline_settings, len(posts), timeout=180)
        # Live workers only: the killed one lingering unreaped (a zombie) is not a restart.
        restarted = wait_for_workers(supervisor, 2)
        assert killed not in restarted and set(restarted.values()) == {"classify"}

    seen = Counter(r.post_id for r in results)
    assert set(seen) == {p.id for p in posts}, "every post has a result"
    duplicates = sum(seen.values()) - len(seen)
    print(f"at-least-once: {duplicates} duplicate results after SIGKILL of one of two workers")
