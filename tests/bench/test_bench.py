"""The benchmarks run end to end (tiny sizes, tiny model); their figures are checked for consistency, not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import slowest_batch
from bench.__main__ import model_to_measure
from common.settings import PROJECT_ROOT, Settings
from sentiment_model import registry
from sentiment_model.runtimes import RUNTIMES
from tests.pipeline.test_model_rollout import install
from tests.sentiment_model.onnx_models import exported_copy


def test_quick_benchmark_run_writes_every_figure(kafka_cluster, tiny_model_path: Path, tmp_path: Path) -> None:
    # The tiny model with its ONNX runtimes: the model's benchmarks run once on each.
    model = exported_copy(tiny_model_path, tmp_path)
    env = Settings(bootstrap_servers=kafka_cluster.bootstrap_servers, batch_size=16).child_environment()
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", str(model), "--out", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # the model's benchmarks run once per runtime: three times
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads((out / "results.json").read_text())
    assert list(run["runtimes"]) == list(RUNTIMES) and run["skipped_runtimes"] == {}
    for runtime, figures in run["runtimes"].items():
        check_runtime(runtime, figures)
    physical = run["physical"]
    assert physical["shape"] == {"layers": 6, "hidden": 384, "intermediate": 1536, "heads": 12}  # MiniLM-L6
    assert 2 < physical["mean_tokens"] <= 128
    for kind in ("fp32", "int8"):
        assert physical[f"{kind}_ceiling_posts_per_second"] == pytest.approx(
            physical["per_core_ops_per_second"][kind] * physical["threads"] / physical["flops_per_post"]
        )
    producer = run["producer"]
    assert (producer["posts"], producer["failed"]) == (5_000, 0)
    assert producer["megabytes_per_second"] == pytest.approx(
        producer["posts_per_second"] * producer["mean_post_bytes"] / 1e6
    )
    pacing = producer["pacing"]
    assert [r["target"] for r in pacing["runs"]] == [200, 2000] and {r["failed"] for r in pacing["runs"]} == {0}
    assert (pacing["switch"]["from"], pacing["switch"]["to"], pacing["switch"]["failed"]) == (200, 2000, 0)
    assert set(run["slowest"]["seconds"]) == set(slowest_batch.TEXT_KINDS) and run["slowest"]["batch_size"] == 8
    assert run["slowest"]["slowest_seconds"] == max(run["slowest"]["seconds"].values())
    table = (out / "results.md").read_text()
    assert all(f"| {runtime}: pipeline throughput" in table for runtime in RUNTIMES)
    assert "| Pipeline throughput, fastest runtime / torch fp32" in table and "| Physical estimate" in table
    assert "| Producer" in table and "| Paced producer" in table and "| Slowest batch" in table
    assert (out / "throughput.html").exists() and (out / "latency.html").exists()


def check_runtime(runtime: str, figures: dict) -> None:
    model = figures["model"]
    assert model["runtime"] == runtime
    for mode in ("arrival_order", "sorted_batches", "sorted_whole_list"):
        assert set(model[mode]) == {"1", "8", "16", "32", "64"}
    assert model["best"]["posts_per_second"] == max(
        max(model[mode].values()) for mode in ("arrival_order", "sorted_batches", "sorted_whole_list")
    )
    pipeline = figures["pipeline"]
    assert (pipeline["runtime"], pipeline["posts"], pipeline["duplicates"]) == (runtime, 200, 0)
    # The workers ran the runtime asked for: its int8 variant names itself in every result.
    assert pipeline["models"] == ["tiny-int8" if runtime == "onnx-int8" else "tiny"]
    assert 1 <= pipeline["mean_batch"] <= pipeline["batch_size"] == 16
    # The rate counts the posts scored after the first batch, over the time from that batch to the last.
    assert 0 < pipeline["posts_per_second"] * pipeline["seconds"] < pipeline["posts"]
    latency = figures["latency"]
    assert latency["runtime"] == runtime and latency["adhoc_lost"] == 0
    for key in ("end_to_end_seconds", "produced_to_scored_seconds", "adhoc_round_trip_seconds"):
        assert 0 < latency[key]["p50"] <= latency[key]["p95"], key
    # Per post, scored comes before seen by a reader: so does every percentile.
    assert latency["produced_to_scored_seconds"]["p95"] <= latency["end_to_end_seconds"]["p95"]
    assert [s["workers"] for s in figures["scaling"]] == [1, 2]


def test_the_model_to_measure_is_the_one_a_worker_would_load(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="'auto' is not built yet"):
        model_to_measure("auto", tmp_path)
    install(tiny_model_path, tmp_path, registry.QUICK_MODEL)
    expected = str(registry.model_path(tmp_path, registry.QUICK_MODEL))
    assert model_to_measure("auto", tmp_path) == expected
    assert model_to_measure(registry.QUICK_MODEL, tmp_path) == expected
    assert model_to_measure(str(tiny_model_path), tmp_path) == str(tiny_model_path)
