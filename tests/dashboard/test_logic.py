"""The dashboard's logic without Streamlit or Kafka: bounds, aggregates, dedup, percentiles, alerts."""

from __future__ import annotations

import base64
import io
import itertools
import json
import random
import time

import numpy as np
import pytest

from common.contract import LABELS
from dashboard.adhoc import MAX_BATCH, SubmissionError, batch_lines, make_posts
from dashboard.alerts import Thresholds, evaluate
from dashboard.buckets import SecondBuckets, series_from_records
from dashboard.charts import resample
from dashboard.dedup import RecentIds
from dashboard.histogram import LATENCY_EDGES, format_latency, latency_bin, latency_percentile
from dashboard.monitoring import ThroughputTracker
from dashboard.producer_control import Upload, make_source
from dashboard.records import parse_result
from tests.dashboard.samples import feed, record, result_json

# --- dedup --------------------------------------------------------------------------------------


def test_recent_ids_are_bounded_and_forget_the_oldest_first() -> None:
    ids = RecentIds(3)
    assert [ids.add(x) for x in "abca"] == [True, True, True, False]
    assert ids.add("d") and len(ids) == 3
    assert "a" not in ids and "b" in ids
    assert ids.add("a")  # forgotten, so new again


# --- percentiles ----------------------------------------------------------------------------------


def hist(samples: np.ndarray) -> np.ndarray:
    counts = np.zeros(len(LATENCY_EDGES) + 1)
    for sample in samples:
        counts[latency_bin(float(sample))] += 1
    return counts


@pytest.mark.parametrize("q", [1, 50, 90, 95, 99])
def test_histogram_percentiles_match_exact_ones_within_the_bin_resolution(q: float) -> None:
    samples = np.random.default_rng(7).lognormal(mean=-1.0, sigma=1.2, size=50_000)
    assert latency_percentile(hist(samples), q) == pytest.approx(np.percentile(samples, q), rel=0.05)


def test_percentile_edge_cases() -> None:
    assert latency_percentile(np.zeros(len(LATENCY_EDGES) + 1), 50) is None
    one = hist(np.array([0.25]))
    assert all(
        LATENCY_EDGES[latency_bin(0.25) - 1] <= latency_percentile(one, q) <= LATENCY_EDGES[latency_bin(0.25)]
        for q in (0, 50, 100)
    )
    assert latency_percentile(hist(np.array([-0.2, 0.0005])), 100) <= 0.001  # skewed clocks land in the first bin
    assert latency_percentile(hist(np.array([7200.0])), 50) == LATENCY_EDGES[-1]  # open last bin: its lower edge
    ordered = [latency_percentile(hist(np.array([0.1] * 50 + [2.0] * 45 + [30.0] * 5)), q) for q in (50, 95, 99)]
    assert ordered == sorted(ordered) and ordered[0] < 0.12 and 1.7 < ordered[1] < 2.3 and ordered[2] > 25
    with pytest.raises(ValueError):
        latency_percentile(one, 101)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "–"),
        (0.0424, "42 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.00 s"),
        (59.5, "59.50 s"),
        (90.0, "1.5 min"),
        (3599.0, "60.0 min"),
        (LATENCY_EDGES[-1], "> 1 h"),
        (18_434.0, "> 1 h"),
    ],
)
def test_latency_is_shown_in_units_people_read(seconds: float | None, shown: str) -> None:
    assert format_latency(seconds) == shown


# --- aggregates -----------------------------------------------------------------------------------


def test_buckets_keep_only_the_horizon_and_cap_sources() -> None:
    now = time.time()
    buckets = SecondBuckets(horizon_seconds=60, max_sources=2)
    for second in range(600):
        buckets.add(record(f"p{second}", at=now - 600 + second, source=f"s{second % 5}"))
    buckets.prune(now)
    assert len({second for second, _ in buckets.copy_rows(0)}) <= 61
    assert buckets.sources == ["(other)", "s0", "s1"]
    buckets.add(record("old", at=now - 3600))  # older than the horizon: ignored
    assert all(second >= now - 61 for second, _ in buckets.copy_rows(0))


def test_series_sums_labels_polarity_and_histograms() -> None:
    now = time.time()
    records = [
        record("a", "POSITIVE", 0.9, now),
        record("b", "NEGATIVE", 0.7, now),
        record("c", "NEUTRAL", 0.55, now - 5),
    ]
    series = series_from_records(records, now - 60)
    assert series.total == 3
    assert series.label_counts.sum(axis=0).tolist() == [1, 1, 1]
    assert series.polarity_sums.sum() == pytest.approx(0.9 - 0.7)
    assert series.confidence_hist.sum() == 3 and series.latency_hists.sum() == 3
    assert list(series.seconds) == sorted(series.seconds)


def test_resample_fills_empty_steps_and_computes_rates() -> None:
    now = float(int(time.time()) // 5 * 5)  # on a step boundary: the 30 results fall in one step
    series = series_from_records([record(str(i), at=now - 30 + i % 3) for i in range(30)], now - 60)
    frame = resample(series, now - 60, now, 5)
    assert frame["total"].sum() == 30 and (frame["total"] == 0).sum() >= 10
    assert frame["rate"].max() == pytest.approx(30 / 5)
    assert frame["p50"].notna().sum() == 1


# --- the feed ------------------------------------------------------------------------------------


def test_feed_counts_each_post_once_and_ignores_malformed_messages() -> None:
    results = feed()
    now = time.time()
    results.ingest_results([(result_json("a"), now), (result_json("b", "NEGATIVE"), now), (result_json("a"), now + 1)])
    results.ingest_results([(b"{broken", now), (None, now), (result_json("c", "MAYBE"), now)])
    status = results.status()
    assert (status.results, status.duplicates) == (2, 1)
    snapshot = results.snapshot(60)
    assert snapshot.series.total == 2 and [r.post_id for r in snapshot.latest] == ["b", "a"]


def test_feed_filters_by_source_and_author() -> None:
    results = feed()
    now = time.time()
    results.ingest_results(
        [
            (result_json(f"p{i}", source=("reddit" if i % 3 == 0 else "twitter"), author=f"u{i % 2}"), now)
            for i in range(30)
        ]
    )
    assert results.snapshot(60, sources=["reddit"]).series.total == 10
    only_u0 = results.snapshot(60, authors=["u0"])
    assert only_u0.series.total == 15 and only_u0.author_filtered
    assert {r.author for r in only_u0.latest} == {"u0"}
    assert results.choices() == (["reddit", "twitter"], ["u0", "u1"])


def test_feed_finds_adhoc_results_and_dead_letters_by_post_id() -> None:
    results = feed(adhoc_size=2)
    now = time.time()
    results.ingest_results([(result_json("x1", source="adhoc"), now), (result_json("y", source="twitter"), now)])
    payload = base64.b64encode(json.dumps({"id": "x2", "text": "too long"}).encode()).decode()
    letter = {
        "reason": "text_too_long",
        "detail": "too long",
        "payload_base64": payload,
        "payload_preview": "{...",
        "key": "k",
        "source_topic": "posts.raw",
        "partition": 0,
        "offset": 7,
        "failed_at": now,
    }
    results.ingest_dead_letters([json.dumps(letter).encode(), b"garbage"])
    assert results.outcome("x1").label == "POSITIVE"
    assert results.outcome("x2").reason == "text_too_long"
    assert results.outcome("y") is None  # only ad-hoc posts are indexed
    results.ingest_results([(result_json("x3", source="adhoc"), now)])
    assert results.outcome("x1") is None  # bounded: the oldest is forgotten
    assert results.status().dead_letters == 1 and results.recent_dead_letters()[0].offset == 7


def test_latency_is_result_time_minus_produced_time() -> None:
    parsed = parse_result(result_json("a", produced_at=100.0), 102.5)
    assert parsed is not None and parsed.latency == pytest.approx(2.5)
    assert parsed.polarity == pytest.approx(0.9) and record(label="NEGATIVE", score=0.6).polarity == pytest.approx(-0.6)


def test_the_feed_stays_within_its_bounds_whatever_it_ingests() -> None:
    # Ten times past every bound. A million results, how fast they are ingested, the memory they take and how long a
    # snapshot takes are measured by `make bench` (bench/dashboard_ingest.py), not asserted here.
    results = feed(ring_size=2_000, dedup_size=20_000, history_seconds=900)
    rng = random.Random(3)
    start = time.time() - 600  # 90 s of results, well inside the 15 minutes of history
    template = result_json("ID", text="x" * 120).decode()
    messages = [
        (
            template.replace('"ID"', f'"{i}"').replace('"POSITIVE"', f'"{rng.choice(LABELS)}"').encode(),
            start + i * 0.009,
        )
        for i in range(10_000)
    ]
    for round_ in range(20):  # 200,000 results (ids made unique per round)
        batch = [(value.replace(b'"post_id": "', f'"post_id": "{round_}-'.encode()), at) for value, at in messages]
        for index in range(0, len(batch), 2000):
            results.ingest_results(batch[index : index + 2000])
    assert results.status().results == 200_000
    assert len(results._ring) == 2_000 and len(results._seen) == 20_000
    assert len(results._buckets) <= 960
    snapshot = results.snapshot(900)
    frame = resample(snapshot.series, snapshot.since, snapshot.now, 10)
    assert snapshot.series.total == frame["total"].sum() == 200_000 and len(snapshot.latest) == 200


# --- alerts, monitoring, ad-hoc -------------------------------------------------------------------


def test_alerts_fire_on_negative_share_and_lag_only_above_their_thresholds() -> None:
    now = time.time()
    mostly_negative = series_from_records(
        [record(str(i), "NEGATIVE" if i % 4 else "POSITIVE", at=now - 10) for i in range(40)], now - 300
    )
    limits = Thresholds(negative_share=0.5, window_seconds=300, min_posts=20, max_lag=100)
    assert [a.title for a in evaluate(mostly_negative, now, 101, limits)] == [
        "Negative sentiment is high",
        "The pipeline is falling behind",
    ]
    assert evaluate(mostly_negative, now, 100, Thresholds(negative_share=0.8, max_lag=100)) == []
    few = series_from_records([record(str(i), "NEGATIVE", at=now - 10) for i in range(5)], now - 300)
    assert evaluate(few, now, None, limits) == []  # too few posts to judge
    old = series_from_records([record(str(i), "NEGATIVE", at=now - 600) for i in range(50)], now - 900)
    assert evaluate(old, now, None, limits) == []  # outside the alert window


def test_throughput_is_the_growth_of_end_offsets_between_refreshes() -> None:
    tracker = ThroughputTracker()
    assert tracker.update({("t", 0): 100}, 10.0) == {("t", 0): None}
    assert tracker.update({("t", 0): 150, ("t", 1): 5}, 15.0) == {("t", 0): 10.0, ("t", 1): None}
    assert tracker.update({("t", 0): 120, ("t", 1): 5}, 20.0)[("t", 0)] == 0.0  # a truncated topic is no negative rate


def test_adhoc_texts_are_checked_before_anything_is_sent() -> None:
    assert batch_lines("a\n\n  \nb\r\nc") == ["a", "b", "c"]
    assert [p.source for p in make_posts(["hi", "there"], 10)] == ["adhoc", "adhoc"]
    with pytest.raises(SubmissionError, match="Line 2 has 11 characters; the limit is 10"):
        make_posts(["fine", "x" * 11], 10)
    with pytest.raises(SubmissionError, match="no visible characters"):
        make_posts(["\u200b "], 10)
    with pytest.raises(SubmissionError, match="at most"):
        make_posts(["x"] * (MAX_BATCH + 1), 10)
    with pytest.raises(SubmissionError, match="Type some text"):
        make_posts([], 10)


# --- uploads ------------------------------------------------------------------------------------


def test_an_upload_can_be_started_again_from_its_beginning() -> None:
    upload = Upload("posts.csv", io.BytesIO(b"text\nfirst\nsecond\n"))
    for _ in range(2):  # the first start read the file to its end
        posts, summary = make_source("upload", upload, max_rows=10)
        assert [post.text for post in itertools.islice(posts, 3)] == ["first", "second", "first"]
        assert summary == "posts.csv: 2 posts from 2 rows"
