"""The classifier application's wiring against real Kafka, run in-process: under exactly-once, what it writes
through ``transactional_producer`` (its one use of Quix's private API) is committed with the checkpoint or not at all.

If a Quix upgrade moves the application's producer, or stops committing the checkpoint with it, these fail:
a dead letter from a checkpoint that failed would become visible, or the wiring would not build.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from flair.nn.model import DefaultClassifier

from common.contract import DeadLetter, Post, RejectReason, SentimentResult
from common.settings import Settings
from common.topics import group_lag
from pipeline.application import classifier_application
from pipeline.poison import Ledger, PoisonGate
from sentiment_model.classifier import SentimentClassifier
from tests.topic_reader import read_all

MEMBER = "test-classify-0"


@pytest.fixture
def exactly_once(settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(
        # One checkpoint takes both messages: they are read within a millisecond, and 3 s leaves no commit between.
        update={"model": str(tiny_model_path), "processing_guarantee": "exactly-once", "batch_max_wait_ms": 3000}
    )


def run_once(settings: Settings) -> None:
    """The classifier application, in this process, until it has seen nothing new for a few seconds."""
    classifier = SentimentClassifier.load(settings.model, torch_threads=1)
    gate = PoisonGate(Ledger(settings.state_dir / "poison.json"), settings.poison_crash_limit)
    app = classifier_application(settings, classifier, MEMBER, gate)
    app.run(timeout=5, collect=False)


def test_what_the_application_writes_is_committed_with_its_checkpoint_or_not_at_all(
    exactly_once: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = exactly_once
    post = Post(author="ada", source="twitter", text="What a lovely morning")
    raw = Producer(settings.kafka_client_config())
    raw.produce(settings.topic_posts, b"{broken", b"ada")  # dead-lettered as it is read, before the batch is scored
    raw.produce(settings.topic_posts, post.to_bytes(), b"ada")
    assert raw.flush(30) == 0

    def out_of_memory(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")  # no post is blamed: the checkpoint fails

    with monkeypatch.context() as patch:
        patch.setattr(DefaultClassifier, "_encode_data_points", out_of_memory)
        with pytest.raises(RuntimeError, match="can't allocate memory"):
            run_once(settings)
    written = read_all(settings, settings.topic_dead_letters, isolation="read_uncommitted")
    assert len(written) == 1, "the dead letter was written, inside the checkpoint's transaction"
    assert read_all(settings, settings.topic_dead_letters) == [], "and never committed: the checkpoint failed"
    assert group_lag(settings, settings.consumer_group, settings.topic_posts) == 2, "nor were the offsets"

    run_once(settings)
    [letter] = [DeadLetter.model_validate_json(m.value()) for m in read_all(settings, settings.topic_dead_letters)]
    [result] = [SentimentResult.model_validate_json(m.value()) for m in read_all(settings, settings.topic_results)]
    assert (letter.reason, letter.offset, result.post_id) == (RejectReason.INVALID_JSON, 0, post.id)
    assert group_lag(settings, settings.consumer_group, settings.topic_posts) == 0
