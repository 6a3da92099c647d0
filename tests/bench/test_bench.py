"""The benchmarks run end to end (tiny sizes, tiny model); their figures are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import slowest_batch
from common.settings import PROJECT_ROOT, Settings


def test_quick_benchmark_run_writes_every_figure(kafka_cluster, tiny_model_path: Path, tmp_path: Path) -> None:
    env = Settings(bootstrap_servers=kafka_cluster.bootstrap_servers, batch_size=16).child_environment()
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", str(tiny_model_path), "--out", str(tmp_path)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads((tmp_path / "results.json").read_text())
    for mode in ("arrival_order", "sorted_batches", "sorted_whole_list"):
        assert set(run["model"][mode]) == {"1", "8", "16", "32", "64"}
    assert run["model"]["best"]["posts_per_second"] == max(max(run["model"][mode].values()) for mode in
                                                           ("arrival_order", "sorted_batches", "sorted_whole_list"))
    assert run["pipeline"]["posts_per_second"] > 0 and run["pipeline"]["duplicates"] == 0
    assert run["latency"]["end_to_end_seconds"]["count"] > 0 and run["latency"]["adhoc_lost"] == 0
    assert run["producer"]["failed"] == 0 and run["producer"]["posts_per_second"] > 0
    assert [s["workers"] for s in run["scaling"]] == [1, 2]
    assert set(run["slowest"]["seconds"]) == set(slowest_batch.TEXT_KINDS) and run["slowest"]["batch_size"] == 8
    assert run["slowest"]["slowest_seconds"] == max(run["slowest"]["seconds"].values())
    table = (tmp_path / "results.md").read_text()
    assert "| Pipeline throughput" in table and "| Producer" in table and "| Slowest batch" in table
    assert (tmp_path / "throughput.html").exists() and (tmp_path / "latency.html").exists()
