"""Garbage written straight to the results topic, among valid results, through the running statistics worker.

Any producer can write to the results topic. Every record there that is not a valid result must become one
dead letter (``invalid_result``, saying what is wrong with it) and change no statistics; the valid results must
give exactly the per-source event-time windows they imply; and the worker must neither restart nor fall behind.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.contract import LABELS, Post, RejectReason, SentimentResult, SentimentStats
from common.settings import Settings
from tests.adversarial.test_pipeline_inputs import (
    Raw,
    assert_tells_the_whole_original,
    dead_letter_budget,
    dead_letters_by_origin,
    run_pipeline,
)
from tests.faults.support import read_all, wait_until_statistics_caught_up

SOURCES = ("alpha", "beta")
WINDOWS = 4  # event-time windows the valid results span, before the later ones that close them


def result(source: str, created_at: float, label: str, score: float) -> SentimentResult:
    return SentimentResult(
        post_id=f"{source}-{created_at}",
        author=f"{source}-author",
        source=source,
        text="some text",
        label=label,
        score=score,
        model="tiny",
        created_at=created_at,
        produced_at=created_at,
        processed_at=created_at,
    )


def valid_results(first_window_start: float, window_seconds: int) -> list[SentimentResult]:
    """A varying number of results per source and window, in event-time order per source; then one result per
    source in a later window, which closes every earlier one (and stays open itself)."""
    rng = random.Random(8)

    def at(window: int, tenths: int) -> float:
        return first_window_start + (window + tenths / 10) * window_seconds

    results = [
        result(source, at(window, step), rng.choice(LABELS), rng.random())
        for window in range(WINDOWS)
        for source in SOURCES
        for step in range(1, rng.randint(1, 5) + 1)
    ]
    return results + [result(source, at(WINDOWS + 3, 0), "NEUTRAL", 0.5) for source in SOURCES]


@dataclass(frozen=True)
class Garbage:
    name: str
    value: bytes | None
    detail: str  # what its dead letter's detail must say


def garbage() -> list[Garbage]:
    fields = result("alpha", 1.7e9, "POSITIVE", 0.9).model_dump()

    def variant(**changes: object) -> bytes:
        return json.dumps({k: v for k, v in {**fields, **changes}.items() if v is not ...}).encode()

    return [
        Garbage("not JSON", b"hello, statistics", "Invalid JSON"),
        Garbage("a JSON array", b'[{"source": "alpha"}]', "should be an object"),
        Garbage("JSON null", b"null", "should be an object"),
        Garbage("a number beyond any float", b"9" * 5000, "Invalid JSON"),
        Garbage("a raw post (wrong schema)", Post(author="ada", source="alpha", text="hi").to_bytes(), "Extra inputs"),
        Garbage("schema_version 2", variant(schema_version=2), "schema_version"),
        Garbage("no source", variant(source=...), "source: Field required"),
        Garbage("no label", variant(label=...), "label: Field required"),
        Garbage("unknown label", variant(label="ECSTATIC"), "label"),
        Garbage("score of 7", variant(score=7), "score"),
        Garbage("created_at 1e20", variant(created_at=1e20), "created_at"),
        Garbage("created_at -1", variant(created_at=-1), "created_at"),
        Garbage("created_at 'yesterday'", variant(created_at="yesterday"), "created_at"),
        Garbage("created_at null", variant(created_at=None), "created_at"),
        Garbage("a null value (tombstone)", None, "no value"),
        Garbage("a zero-byte value", b"", "no value"),
        Garbage("a 900 KB value", b"{" + b" " * 900_000, "Invalid JSON"),
    ]


def closed_windows(
    results: list[SentimentResult], window_seconds: int, grace_seconds: int
) -> dict[tuple[str, float], SentimentStats]:
    """The statistics of each (source, window start) that the results close: a source's window closes once one of
    its results is at least ``grace_seconds`` past the window's end."""
    windows = defaultdict(list)
    for each in results:
        windows[(each.source, math.floor(each.created_at / window_seconds) * window_seconds)].append(each)
    latest = {source: max(each.created_at for each in results if each.source == source) for source in SOURCES}
    return {
        (source, start): SentimentStats(
            source=source,
            window_start=start,
            window_end=start + window_seconds,
            count=len(members),
            label_counts={label: sum(m.label == label for m in members) for label in {m.label for m in members}},
            mean_score=sum(m.score for m in members) / len(members),
        )
        for (source, start), members in windows.items()
        if start + window_seconds + grace_seconds <= latest[source]
    }


@pytest.fixture
def statistics_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"stats_window_seconds": 1, "stats_grace_seconds": 0})


def test_garbage_on_the_results_topic_is_dead_lettered_and_the_windows_are_exact(
    statistics_settings: Settings, tmp_path: Path
) -> None:
    """Each garbage record: one ``invalid_result`` dead letter naming what is wrong. The statistics: exactly the
    windows the valid results imply, per source (count, labels, mean score). The worker: never restarted."""
    settings = statistics_settings
    window = settings.stats_window_seconds
    first_window_start = float(math.floor(time.time() / window) * window - 600)
    valid = valid_results(first_window_start, window)
    bad = garbage()
    # Each source's results under one key, so in one partition and in event-time order: none arrives late.
    in_order = [Raw(each.source.encode(), each.to_bytes()) for each in valid]
    junk = [Raw(b"junk", each.value) for each in bad]
    messages = [message for pair in itertools.zip_longest(in_order, junk) for message in pair if message is not None]
    run = run_pipeline(
        settings,
        tmp_path / "pipeline.log",
        ["--workers", "0"],
        settings.topic_results,
        messages,
        lambda: wait_until_statistics_caught_up(settings),
    )
    assert not [d for d in run.deliveries if d.error], "the broker refused a message"

    letters = dead_letters_by_origin(settings, settings.topic_results)
    budget = dead_letter_budget(settings)
    by_value = {record.value: record for record in bad}
    got = {}
    for delivery in run.deliveries:
        found = letters.pop((delivery.partition, delivery.offset), [])
        if delivery.raw.key == b"junk":
            record = by_value[delivery.raw.value]
            # Its detail as expected if it says what it must, else as it is (for the failure message).
            got[record.name] = [
                (letter.reason, record.detail if record.detail in letter.detail else letter.detail)
                for _message, letter in found
            ]
            for message, letter in found:
                assert_tells_the_whole_original(message, letter, delivery.raw, budget)
        else:
            assert not found, f"a valid result was dead-lettered: {[letter.detail for _m, letter in found]}"
    expected_letters = {record.name: [(RejectReason.INVALID_RESULT, record.detail)] for record in bad}
    assert got == expected_letters, "one dead letter each, saying what is wrong"
    assert not letters, "dead letters for records never sent"

    stats = [SentimentStats.model_validate_json(m.value()) for m in read_all(settings, settings.topic_stats)]
    expected = closed_windows(valid, window, settings.stats_grace_seconds)
    assert len(expected) == WINDOWS * len(SOURCES)
    assert sorted((s.source, s.window_start) for s in stats) == sorted(expected), "the closed windows, once each"
    assert {(s.source, s.window_start): (s.window_end, s.count, s.label_counts, s.mean_score) for s in stats} == {
        key: (w.window_end, w.count, w.label_counts, pytest.approx(w.mean_score)) for key, w in expected.items()
    }
    run.assert_steady()
