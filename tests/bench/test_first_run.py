"""The first-run benchmark runs end to end (models built beforehand: the tiny model as both product models)."""

from __future__ import annotations

from pathlib import Path

from bench import first_run
from common.contract import SentimentResult
from kafka_local.cluster import ClusterSpec
from sentiment_model import registry
from tests.pipeline.test_model_rollout import install


def test_the_first_run_benchmark_times_the_app_and_the_first_results(
    kafka_cluster: ClusterSpec, tiny_model_path: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    for name in registry.PROFILE_OF:  # nothing left to build: run.py starts no build
        install(tiny_model_path, models, name)
    figures = first_run.measure(kafka_cluster.bootstrap_servers, models, tmp_path)
    assert set(figures) == {
        "models_prebuilt",
        "app_healthy_seconds",
        "first_result_seconds",
        "models_built_first_result_seconds",
    }
    assert figures["models_prebuilt"] is True
    # Timed one after the other from the same start: the first result's figure includes the app's.
    assert 0 < figures["app_healthy_seconds"] <= figures["first_result_seconds"]
    assert figures["models_built_first_result_seconds"] > 0
    for run in ("first", "second"):
        log = (tmp_path / f"{run}-run.log").read_text()
        assert "Building the offline models" not in log, "the models were there: no build"
        assert "sentistream is up" in log and "Stopped" not in log.split("sentistream is up")[0]
    table = first_run.markdown({"date": "today", "machine": {"cores": 2, "cpu": "x"}, "figures": figures})
    assert "| first result on the results topic | " in table and "| full model served | not measured |" in table


def test_a_result_counts_as_this_runs_only_when_scored_after_its_start() -> None:
    def result(processed_at: float) -> bytes:
        return SentimentResult(
            post_id="p",
            author="a",
            source="s",
            text="t",
            label="POSITIVE",
            score=0.9,
            model="m",
            created_at=1.0,
            produced_at=1.0,
            processed_at=processed_at,
        ).to_bytes()

    former_run = [result(100.0), b"not a result"]
    assert not first_run.scored_since(former_run, since=200.0)
    assert first_run.scored_since([*former_run, result(200.5)], since=200.0)
