"""The pipeline waits for a model, then serves it; it switches models at a checkpoint boundary.

Against the real broker with the real supervisor and a real (tiny) Flair model installed into the models folder as
the build installs one (the model file renamed into place, its card written last).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer

from common.contract import MODEL_CHOICE_KEY, ModelChoice, PipelineStatus, Post, SentimentResult
from common.settings import Settings
from common.topics import group_lag
from producer.producer import PostProducer
from producer.sources import synthetic_posts
from sentiment_model import registry
from tests.pipeline.test_pipeline import make_posts
from tests.processes import running
from tests.topic_reader import read_all
from tests.topic_writer import send_posts
from tests.waiting import wait_for


def install(model: Path, models_dir: Path, name: str) -> Path:
    """Put ``model`` into ``models_dir`` as the build does: the file renamed into place, then its card."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = registry.model_path(models_dir, name)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(model, partial)
    partial.replace(target)
    shutil.copyfile(registry.card_path(model), registry.card_path(target))
    return target


def heartbeats(settings: Settings) -> list[PipelineStatus]:
    return [PipelineStatus.model_validate_json(m.value()) for m in read_all(settings, settings.topic_pipeline_status)]


def results(settings: Settings, at_least: int = 0) -> list[SentimentResult]:
    messages = read_all(settings, settings.topic_results, timeout=180, at_least=at_least)
    return [SentimentResult.model_validate_json(m.value()) for m in messages]


@pytest.fixture
def auto_settings(settings: Settings) -> Settings:
    """``auto``: whatever the (empty) models folder comes to hold."""
    assert not settings.models_dir.exists() or not any(settings.models_dir.iterdir())
    return settings.model_copy(update={"model": "auto", "batch_max_wait_ms": 50})


def test_posts_wait_in_kafka_until_a_model_is_built_then_every_one_is_scored(
    auto_settings: Settings, tiny_model_path: Path, tmp_path: Path
) -> None:
    settings = auto_settings
    posts = make_posts(60)
    log = tmp_path / "pipeline.log"
    with running(settings, "pipeline", "--workers", "1", "--no-stats", log=log):
        send_posts(settings, posts)
        waiting = wait_for(
            lambda: next((s for s in heartbeats(settings) if s.waiting_for_model), None), 60, "a heartbeat that waits"
        )
        assert waiting.model is None and "no model is built" in waiting.waiting_for_model
        assert {w.state for w in waiting.workers} == {"waiting"}
        assert group_lag(settings, settings.consumer_group, settings.topic_posts) == len(posts), "nothing scored"

        installed = install(tiny_model_path, settings.models_dir, registry.QUICK_MODEL)
        scored = results(settings, at_least=len(posts))
        serving = wait_for(lambda: next((s for s in heartbeats(settings) if s.model), None), 60, "a serving heartbeat")
    assert serving.model == str(installed) and serving.waiting_for_model is None
    assert Counter(r.post_id for r in scored) == Counter(p.id for p in posts), "each post scored exactly once"
    assert {(r.model, r.model_version) for r in scored} == {(registry.QUICK_MODEL, registry.model_version(installed))}
    assert group_lag(settings, settings.consumer_group, settings.topic_posts) == 0
    text = log.read_text()
    assert text.index("Waiting for a model") < text.index(f"Serving model {installed}")
    assert f"on torch with {settings.worker_threads(1)} thread(s)" in text, "one worker: every core"


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_model_chosen_mid_stream_takes_over_at_a_checkpoint_losing_and_repeating_nothing(
    guarantee: str, auto_settings: Settings, tiny_model_path: Path, tmp_path: Path
) -> None:
    settings = auto_settings.model_copy(update={"processing_guarantee": guarantee})
    first = install(tiny_model_path, settings.models_dir, registry.QUICK_MODEL)
    second = install(tiny_model_path, settings.models_dir, "challenger")
    log = tmp_path / "pipeline.log"
    producer = PostProducer(settings, synthetic_posts(), rate=40.0, stats_interval=None)
    with running(settings, "pipeline", "--workers", "2", "--no-stats", log=log):
        producer.start()
        wait_for(lambda: len(results(settings)) >= 80, 120, "results from the first model")
        choice = ModelChoice(model="challenger", chosen_at=time.time(), by="test")
        control = Producer(settings.kafka_client_config())
        control.produce(settings.topic_pipeline_control, key=MODEL_CHOICE_KEY, value=choice.to_bytes())
        assert control.flush(10) == 0
        wait_for(
            lambda: sum(r.model == "challenger" for r in results(settings)) >= 80, 180, "results from the new model"
        )
        stats = producer.stop(timeout=60)
        wait_for(
            lambda: group_lag(settings, settings.consumer_group, settings.topic_posts) == 0, 120, "the backlog scored"
        )
    assert (stats.failed, stats.delivered) == (0, stats.sent)
    posts = [Post.model_validate_json(m.value()) for m in read_all(settings, settings.topic_posts)]
    messages = read_all(settings, settings.topic_results)
    scored = [SentimentResult.model_validate_json(m.value()) for m in messages]
    assert Counter(r.post_id for r in scored) == Counter(p.id for p in posts), "each post scored exactly once"
    versions = {(r.model, r.model_version) for r in scored}
    assert versions == {
        (registry.QUICK_MODEL, registry.model_version(first)),
        ("challenger", registry.model_version(second)),
    }
    # At a checkpoint boundary: in each partition of the results, the new model's results follow the old one's.
    models_by_partition: dict[int, list[str]] = defaultdict(list)
    for message, result in zip(messages, scored, strict=True):
        models_by_partition[message.partition()].append(result.model)
    for partition, models in models_by_partition.items():
        switched = models.index("challenger") if "challenger" in models else len(models)
        assert set(models[switched:]) <= {"challenger"}, f"partition {partition} went back to the old model"
    assert f"Switching model: {first}" in log.read_text()
    # Two workers share the cores: each gets half (at least one thread), unless SENTISTREAM_TORCH_THREADS says.
    assert f"on torch with {settings.worker_threads(2)} thread(s)" in log.read_text()
