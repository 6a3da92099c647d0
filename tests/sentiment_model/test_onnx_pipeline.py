"""The pipeline's worker serving the tiny model on ONNX Runtime, against real Kafka: one result per post."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from common.contract import Post, SentimentResult
from common.settings import Settings
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.runtimes import ONNX, ONNX_INT8
from tests.processes import running
from tests.topic_reader import read_all

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
    producer = Producer(settings.kafka_client_config())
    for post in posts:
        producer.produce(settings.topic_posts, key=post.author.encode(), value=post.to_bytes())
    assert producer.flush(30) == 0

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
