"""The Models page's logic without Streamlit or Kafka: which built model a heartbeat names, build texts, log tails,
the pretrained check off the page's thread, and the count of results per model in the live feed."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from dashboard import model_control, models
from dashboard.buckets import OTHER_MODEL, SecondBuckets
from dashboard.model_control import PretrainedChecker, log_tail
from dashboard.records import ResultRecord
from sentiment_model import registry
from sentiment_model.registry import BuildProgress, BuiltModel
from tests.dashboard.samples import feed, record, result_json
from tests.waiting import wait_for


def built(name: str, profile: str, macro_f1: float, folder: Path = Path("/models")) -> BuiltModel:
    return BuiltModel(name, folder / f"{name}.pt", {"profile": profile, "test": {"macro_f1": macro_f1}})


def test_a_heartbeats_model_is_found_among_the_built_ones_by_path_or_name() -> None:
    quick, full = built(registry.QUICK_MODEL, "quick", 0.7), built(registry.FULL_MODEL, "full", 0.85)
    known = [full, quick]
    assert models.find_built(f"/models/{registry.QUICK_MODEL}.pt", known) is quick
    assert models.find_built(f"/elsewhere/{registry.FULL_MODEL}.pt", known) is full  # the same model, moved
    assert models.find_built(f"{registry.FULL_MODEL}-int8", known) is full  # quantised: the classifier's name
    assert models.find_built("sentiment", known) is None
    assert models.is_quick(quick) and not models.is_quick(full)
    assert models.describe(quick) == f"{registry.QUICK_MODEL} (quick model, less accurate, held-out macro-F1 0.700)"
    assert models.describe(full) == f"{registry.FULL_MODEL} (full model, held-out macro-F1 0.850)"


def test_a_builds_banner_says_which_model_how_far_and_how_long() -> None:
    now = time.time()
    running = BuildProgress(
        name=registry.FULL_MODEL,
        profile="full",
        state="running",
        phase="training",
        percent=12.4,
        eta_seconds=3725,
        started_at=now,
        updated_at=now,
    )
    assert models.banner_text(running) == "Building the full model: training 12% (ETA 1 h 02 min)"
    starting = running.model_copy(update={"phase": "", "percent": 0.0, "eta_seconds": None, "name": "mine"})
    assert models.banner_text(starting) == "Building the full model: starting 0% (ETA not known yet)"
    other = starting.model_copy(update={"profile": "tiny"})
    assert models.banner_text(other) == "Building model mine: starting 0% (ETA not known yet)"
    assert [models.duration(s) for s in (0, 59.4, 61, 599, 600, 7200)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "9 min 59 s",
        "10 min",
        "2 h 00 min",
    ]


def test_the_log_tail_shows_the_last_lines_as_a_terminal_would(tmp_path: Path) -> None:
    log = tmp_path / "m.build.log"
    assert log_tail(log) is None
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "\r 10%\r 20%\r 30%|###\n\n")
    assert log_tail(log, lines=3) == "line 98\nline 99\n 30%|###"
    log.write_bytes(b"x" * 100 + b"\ncut off\nwhole \xff line\n")  # bigger than read: the cut first line dropped
    assert log_tail(log, max_bytes=30) == "cut off\nwhole \ufffd line"


def test_the_pretrained_check_runs_off_the_callers_thread_and_its_answer_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    asked: list[str] = []

    def slow_answer(name: str) -> str | None:
        asked.append(name)
        release.wait(30)
        return f"{name} cannot be reached"

    monkeypatch.setattr(model_control.pretrained, "pretrained_unavailable", slow_answer)
    checker = PretrainedChecker(ttl=60)
    first = checker.availability("sentiment")  # returns at once, whatever the check waits on
    assert (first.checking, first.problem, first.checked_at) == (True, None, None)
    assert checker.availability("sentiment").checking and asked == ["sentiment"]  # one question at a time
    release.set()
    answer = wait_for(lambda: (a := checker.availability("sentiment")).checked_at and a, 30, "the answer")
    assert (answer.checking, answer.problem) == (False, "sentiment cannot be reached")
    assert asked == ["sentiment"]  # kept for the ttl: not asked again

    expired = PretrainedChecker(ttl=0)
    expired.availability("sentiment-fast")
    wait_for(lambda: expired.availability("sentiment-fast").checked_at, 30, "the answer")
    stale = expired.availability("sentiment-fast")  # the old answer, while a new check runs
    assert stale.checking and stale.problem == "sentiment-fast cannot be reached"


def test_the_feed_counts_results_per_model_and_version_for_the_view() -> None:
    live = feed()
    now = time.time()

    def result(post_id: str, model: str, version: str | None, source: str = "twitter", author: str = "ada") -> bytes:
        value = json.loads(result_json(post_id, source=source, author=author))
        return json.dumps({**value, "model": model, "model_version": version}).encode()

    live.ingest_results(
        [(result(f"q{i}", "quick", "v1"), now) for i in range(4)]
        + [(result(f"f{i}", "full", "v2", source="reddit"), now) for i in range(3)]
        + [(result("f-bob", "full", "v2", author="bob"), now)]
        + [(result_json("old"), now)]  # a result from before versions: its model, no version
    )
    snapshot = live.snapshot(60)
    assert snapshot.models == {("quick", "v1"): 4, ("full", "v2"): 4, ("tiny", None): 1}
    assert snapshot.models.total() == snapshot.series.total
    assert live.snapshot(60, sources=["reddit"]).models == {("full", "v2"): 3}
    assert live.snapshot(60, authors=["bob"]).models == {("full", "v2"): 1}  # from the ring of recent results


def test_the_count_of_models_is_bounded() -> None:
    buckets = SecondBuckets(horizon_seconds=60, max_models=2)
    now = time.time()
    for i in range(5):
        buckets.add(models_record(f"model-{i}", now))
    assert buckets.count_models(now - 10) == {("model-0", "v"): 1, ("model-1", "v"): 1, OTHER_MODEL: 3}
    buckets.prune(now + 120)
    assert buckets.count_models(0) == {}


def models_record(model: str, at: float) -> ResultRecord:
    return record(model, at=at)._replace(model=model, model_version="v")
