"""The classifier sink in-process, with the real tiny Flair model: a failing model call costs one post."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from flair.nn.model import DefaultClassifier

from common.contract import DeadLetter, Post, RejectReason, SentimentResult
from pipeline.classifier_sink import ClassifierSink, HandedOver
from pipeline.definition import Accepted
from pipeline.outputs import Outputs, Source
from sentiment_model.classifier import SentimentClassifier
from tests.fault_injection.model_faults import failing_encoder

MARK = "MARKED-FOR-FAILURE"
TEXTS = ["I love this so much", "This is awful and broken", "The bus comes at nine", "Best day ever!!!"]


class Written:
    """What the sink wrote, by topic, through the produce callback it is given (the app's producer in production)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, bytes]] = []

    def __call__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.messages.append((topic, key, value))

    def results(self) -> list[SentimentResult]:
        return [SentimentResult.model_validate_json(v) for t, _, v in self.messages if t == "results"]

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(v) for t, _, v in self.messages if t == "dead-letters"]


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> SentimentClassifier:
    return SentimentClassifier.load(str(tiny_model_path), torch_threads=1)


def sink_writing_to(written: Written, model: SentimentClassifier, results_limit: int = 1_000_000) -> ClassifierSink:
    outputs = Outputs(written, "results", "dead-letters", {"results": results_limit, "dead-letters": 1_000_000})
    return ClassifierSink(model, outputs, model_batch_size=4)


def feed(sink: ClassifierSink, texts: list[str]) -> list[Post]:
    posts = [Post(author=f"a{i}", source="test", text=text) for i, text in enumerate(texts)]
    for offset, post in enumerate(posts):
        source = Source(post.to_bytes(), post.author.encode(), "posts.raw", 0, offset)
        sink.add(Accepted(post, source), post.author.encode(), 1_700_000_000_000 + offset, None, "posts.raw", 0, offset)
    return posts


def test_a_full_batch_is_scored_in_one_call_and_each_result_is_its_own_posts(model: SentimentClassifier) -> None:
    written = Written()
    sink = sink_writing_to(written, model)
    texts = TEXTS * 8
    posts = feed(sink, texts)
    sink.flush()
    alone = {text: prediction for text, prediction in zip(TEXTS, model.predict(TEXTS), strict=True)}
    results = written.results()
    assert [r.post_id for r in results] == [p.id for p in posts]
    assert all((r.label, round(r.score, 4)) == (alone[r.text].label, round(alone[r.text].score, 4)) for r in results)
    assert all(key == post.author.encode() for (_, key, _), post in zip(written.messages, posts, strict=True))
    assert written.dead_letters() == []
    sink.flush()  # nothing left over for the next checkpoint
    assert len(written.messages) == len(posts)


def test_a_model_failure_mid_batch_dead_letters_only_the_posts_that_cause_it(
    model: SentimentClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        DefaultClassifier, "_encode_data_points", failing_encoder(DefaultClassifier._encode_data_points, MARK)
    )
    written = Written()
    sink = sink_writing_to(written, model)
    texts = [f"{TEXTS[i % 4]} {MARK}" if i in (5, 6, 23) else TEXTS[i % 4] for i in range(32)]
    posts = feed(sink, texts)
    sink.flush()

    letters = written.dead_letters()
    assert sorted(letter.offset for letter in letters) == [5, 6, 23]
    assert {letter.reason for letter in letters} == {RejectReason.MODEL_ERROR}
    assert all(
        f"RuntimeError: injected model failure on a text containing {MARK!r}" == letter.detail for letter in letters
    )
    assert all(
        Post.model_validate_json(base64.b64decode(letter.payload_base64)).text == texts[letter.offset]
        for letter in letters
    )
    assert sorted(r.post_id for r in written.results()) == sorted(
        p.id for i, p in enumerate(posts) if i not in (5, 6, 23)
    )


def test_a_model_that_answers_with_the_wrong_number_of_predictions_costs_only_the_posts_it_miscounts(
    model: SentimentClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    predict = SentimentClassifier.predict

    def drops_the_marked(self: SentimentClassifier, texts, batch_size: int = 32):  # type: ignore[no-untyped-def]
        predictions = predict(self, texts, batch_size)
        return [p for p, text in zip(predictions, texts, strict=True) if MARK not in text]

    monkeypatch.setattr(SentimentClassifier, "predict", drops_the_marked)
    written = Written()
    sink = sink_writing_to(written, model)
    feed(sink, [TEXTS[0], TEXTS[1] + MARK, TEXTS[2], TEXTS[3]])
    sink.flush()
    assert [(letter.offset, letter.detail) for letter in written.dead_letters()] == [
        (1, "ValueError: the model gave 0 predictions for 1 texts")
    ]
    assert len(written.results()) == 3


def test_running_out_of_memory_is_not_blamed_on_a_post(
    model: SentimentClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(DefaultClassifier, "_encode_data_points", out_of_memory)
    written = Written()
    sink = sink_writing_to(written, model)
    feed(sink, TEXTS)
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        sink.flush()
    assert written.messages == []


def test_a_result_too_large_for_its_topic_becomes_a_dead_letter(model: SentimentClassifier) -> None:
    written = Written()
    # Room for a short post's result (about 310 bytes), not for one of 500 characters (about 800).
    sink = sink_writing_to(written, model, results_limit=1024 + 500)
    feed(sink, ["short and sweet", "long " * 100])
    sink.flush()
    assert len(written.results()) == 1
    [letter] = written.dead_letters()
    assert (letter.offset, letter.reason) == (1, RejectReason.RESULT_TOO_LARGE)


def test_a_flush_on_a_rebalance_thread_scores_nothing_and_leaves_the_posts_to_kafka(model: SentimentClassifier) -> None:
    """Quix flushes on a partition revoke in a thread of its own that it may abandon: not scoring there keeps a late
    result out of the next transaction; the checkpoint aborts and the posts are read again from Kafka."""
    written = Written()
    sink = sink_writing_to(written, model)
    feed(sink, TEXTS)
    raised: list[BaseException] = []
    thread = threading.Thread(target=lambda: raised.extend(_raises(sink.flush)))
    thread.start()
    thread.join()
    assert [type(error) for error in raised] == [HandedOver]
    sink.flush()
    assert written.messages == []


def _raises(call) -> list[BaseException]:  # type: ignore[no-untyped-def]
    try:
        call()
    except BaseException as error:
        return [error]
    return []


def test_a_pause_drops_the_pending_posts_for_kafka_to_replay(model: SentimentClassifier) -> None:
    written = Written()
    sink = sink_writing_to(written, model)
    feed(sink, TEXTS)
    sink.on_paused()
    sink.flush()
    assert written.messages == []
