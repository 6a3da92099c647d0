"""The benchmarks run end to end (tiny sizes, tiny model); their figures are checked for consistency, not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import slowest_batch
from common.settings import PROJECT_ROOT, Settings


def test_quick_benchmark_run_writes_every_figure(kafka_cluster, tiny_model_path: Path, tmp_path: Path) -> None:
    env = Settings(bootstrap_servers=kafka_cluster.bootstrap_servers, batch_size=16).child_environment()
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", str(tiny_model_path), "--out", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads((tmp_path / "results.json").read_text())
    for mode in ("arrival_order", "sorted_batches", "sorted_whole_list"):
        assert set(run["model"][mode]) == {"1", "8", "16", "32", "64"}
    assert run["model"]["best"]["posts_per_second"] == max(
        max(run["model"][mode].values()) for mode in ("arrival_order", "sorted_batches", "sorted_whole_list")
    )
    pipeline = run["pipeline"]
    assert (pipeline["posts"], pipeline["duplicates"]) == (200, 0)
    assert 1 <= pipeline["mean_batch"] <= pipeline["batch_size"] == 16
    # The rate counts the posts scored after the first batch, over the time from that batch to the last.
    assert 0 < pipeline["posts_per_second"] * pipeline["seconds"] < pipeline["posts"]
    latency = run["latency"]
    assert latency["adhoc_lost"] == 0
    for key in ("end_to_end_seconds", "produced_to_scored_seconds", "adhoc_round_trip_seconds"):
        assert 0 < latency[key]["p50"] <= latency[key]["p95"], key
    # Per post, scored comes before seen by a reader: so does every percentile.
    assert latency["produced_to_scored_seconds"]["p95"] <= latency["end_to_end_seconds"]["p95"]
    producer = run["producer"]
    assert (producer["posts"], producer["failed"]) == (5_000, 0)
    assert producer["megabytes_per_second"] == pytest.approx(
        producer["posts_per_second"] * producer["mean_post_bytes"] / 1e6
    )
    pacing = producer["pacing"]
    assert [r["target"] for r in pacing["runs"]] == [200, 2000] and {r["failed"] for r in pacing["runs"]} == {0}
    assert (pacing["switch"]["from"], pacing["switch"]["to"], pacing["switch"]["failed"]) == (200, 2000, 0)
    assert [s["workers"] for s in run["scaling"]] == [1, 2]
    assert set(run["slowest"]["seconds"]) == set(slowest_batch.TEXT_KINDS) and run["slowest"]["batch_size"] == 8
    assert run["slowest"]["slowest_seconds"] == max(run["slowest"]["seconds"].values())
    table = (tmp_path / "results.md").read_text()
    assert (
        "| Pipeline throughput" in table
        and "| Producer" in table
        and "| Paced producer" in table
        and "| Slowest batch" in table
    )
    assert (tmp_path / "throughput.html").exists() and (tmp_path / "latency.html").exists()
