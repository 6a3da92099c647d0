"""The pipeline's worker serving the tiny model on ONNX Runtime, against real Kafka: one result per post."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from common.contract import Post, SentimentResult
from common.settings import Settings
from sentiment_model import registry, runtimes
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.runtimes import ONNX, ONNX_INT8
from tests.processes import running
from tests.topic_reader import read_all
from tests.topic_writer import send_posts
from tests.waiting import wait_for

TEXTS = [
    "I absolutely love this, best day ever!",
    "This is the worst service I have ever had. Awful.",
    "The meeting is at 3pm in room 204.",
    "Terrible, broken on arrival and support ignored me. Hate it.",
    "Thanks so much @JetBlue, the crew was wonderful and kind.",
    "The store opens at nine.",
] * 4


@pytest.mark.parametrize("runtime", [ONNX, ONNX_INT8])
def test_the_worker_scores_every_post_on_the_runtime_asked_for(
    settings: Settings, onnx_model_path: Path, tmp_path: Path, runtime: str
) -> None:
    settings = settings.model_copy(update={"model": str(onnx_model_path), "model_runtime": runtime})
    posts = [Post(author=f"a{i % 5}", source="test", text=text) for i, text in enumerate(TEXTS)]
    send_posts(settings, posts)

    log = tmp_path / "pipeline.log"
    with running(settings, "pipeline", "--workers", "1", "--no-stats", log=log):
        messages = read_all(settings, settings.topic_results, timeout=300, at_least=len(posts))
    results = {result.post_id: result for result in (SentimentResult.model_validate_json(m.value()) for m in messages)}
    assert set(results) == {post.id for post in posts}
    # The worker says which runtime it loaded, and the results name the model variant that scored them.
    assert f"model tiny{'-int8' if runtime == ONNX_INT8 else ''} on {runtime}" in log.read_text()
    assert {result.model for result in results.values()} == {"tiny-int8" if runtime == ONNX_INT8 else "tiny"}
    # Labels as the same runtime gives them in this process (int8 quantises activations per batch, so its
    # scores, though not its labels on these clear texts, depend on the batch).
    model = SentimentClassifier.load(str(onnx_model_path), runtime=runtime)
    expected = dict(zip(TEXTS, (p.label for p in model.predict(TEXTS)), strict=True))
    assert {post.id: results[post.id].label for post in posts} == {post.id: expected[post.text] for post in posts}


def test_an_export_made_while_the_pipeline_runs_is_served_after_a_checkpoint_losing_nothing(
    settings: Settings, onnx_model_path: Path, tmp_path: Path
) -> None:
    # The same model file without its export: onnx-int8 is asked for, so the worker falls back to torch.
    served = tmp_path / "models" / onnx_model_path.name
    served.parent.mkdir()
    shutil.copy(onnx_model_path, served)
    shutil.copy(registry.card_path(onnx_model_path), registry.card_path(served))
    settings = settings.model_copy(update={"model": str(served), "model_runtime": ONNX_INT8})
    posts = [Post(author=f"a{i % 5}", source="test", text=text) for i, text in enumerate(TEXTS * 2)]
    before, after = posts[: len(TEXTS)], posts[len(TEXTS) :]
    log = tmp_path / "pipeline.log"
    with running(settings, "pipeline", "--workers", "1", "--no-stats", log=log):
        send_posts(settings, before)
        scored = read_all(settings, settings.topic_results, timeout=300, at_least=len(before))
        assert {SentimentResult.model_validate_json(m.value()).model for m in scored} == {"tiny"}
        # Installed as the export installs itself: its files first, the checks (what workers read) last.
        shutil.copytree(runtimes.exports_dir(onnx_model_path), runtimes.exports_dir(served))
        shutil.copy(runtimes.validation_path(onnx_model_path), runtimes.validation_path(served))
        wait_for(lambda: "model tiny-int8 on onnx-int8" in log.read_text(), 120, "a worker on the new export")
        send_posts(settings, after)
        messages = read_all(settings, settings.topic_results, timeout=300, at_least=len(posts))
    results = [SentimentResult.model_validate_json(m.value()) for m in messages]
    assert Counter(result.post_id for result in results) == Counter(post.id for post in posts), "each post once"
    models = {result.post_id: result.model for result in results}
    assert {models[post.id] for post in before} == {"tiny"}
    assert {models[post.id] for post in after} == {"tiny-int8"}, "the posts sent after the export ran on it"
    assert f"The ONNX export of {served} changed" in log.read_text()
