"""The runtime classifier on a real (tiny) Flair model, and how it fails when a model cannot be had."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from common.contract import LABELS
from sentiment_model import classifier as classifier_module
from sentiment_model.classifier import ModelNotFound, ModelUnavailable, Prediction, SentimentClassifier

TEXTS = [
    "I absolutely love this, best day ever!",
    "This is the worst service I have ever had. Awful.",
    "The meeting is at 3pm in room 204.",
    "What a fantastic, beautiful performance, I am thrilled",
    "Terrible, broken on arrival and support ignored me. Hate it.",
    "The report was published on Tuesday.",
    "ok",
    "@united flight 1234 delayed again, third time this month!!!",
    "Thanks so much @JetBlue, the crew was wonderful and kind.",
    "A dull, lifeless movie that wastes its cast.",
    "An utterly charming film with a big heart.",
    "The store opens at nine.",
] * 3


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> SentimentClassifier:
    return SentimentClassifier.load(str(tiny_model_path), torch_threads=2)


def test_loads_a_three_class_model_named_after_its_file(model: SentimentClassifier) -> None:
    assert model.name == "tiny"
    assert sorted(model.labels) == sorted(LABELS)
    assert torch.get_num_threads() == 2
    assert os.environ.get("HF_HUB_OFFLINE") and os.environ.get("TRANSFORMERS_OFFLINE")


def test_one_prediction_per_text_in_order(model: SentimentClassifier) -> None:
    together = model.predict(TEXTS)
    alone = [model.predict([text])[0] for text in TEXTS]
    assert len(together) == len(TEXTS)
    assert all(isinstance(p, Prediction) and p.label in LABELS and 0.0 <= p.score <= 1.0 for p in together)
    assert [p.label for p in together] == [p.label for p in alone]
    assert [p.score for p in together] == pytest.approx([p.score for p in alone], abs=1e-3)


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_batch_size_does_not_change_labels(model: SentimentClassifier, batch_size: int) -> None:
    reference = model.predict(TEXTS, batch_size=32)
    assert [p.label for p in model.predict(TEXTS, batch_size=batch_size)] == [p.label for p in reference]


def test_beats_chance_on_clear_examples(model: SentimentClassifier) -> None:
    clear = {
        "I love it, this is wonderful and amazing!": "POSITIVE",
        "Best purchase ever, so happy with it.": "POSITIVE",
        "This is horrible, I hate it, worst ever.": "NEGATIVE",
        "Awful experience, rude staff, never again.": "NEGATIVE",
    }
    predictions = model.predict(list(clear))
    assert [p.label for p in predictions] == list(clear.values())


def test_predicts_every_label_on_varied_text(model: SentimentClassifier) -> None:
    from sentiment_model import datasets

    test = datasets.sample(datasets.load_splits().test, 60)
    assert {p.label for p in model.predict([e.text for e in test])} == set(LABELS)


def test_empty_input_and_token_less_text(model: SentimentClassifier) -> None:
    assert model.predict([]) == []
    predictions = model.predict(["I love this!", "\u200b", "I hate this!"])
    assert predictions[1] == Prediction("NEUTRAL", 0.0)
    assert [p.label for p in predictions[::2]] == [p.label for p in model.predict(["I love this!", "I hate this!"])]


def test_quantized_model_mostly_agrees(tiny_model_path: Path, model: SentimentClassifier) -> None:
    quantized = SentimentClassifier.load(str(tiny_model_path), quantize=True)
    assert quantized.name == "tiny-int8"
    agree = sum(a.label == b.label for a, b in zip(quantized.predict(TEXTS), model.predict(TEXTS), strict=True))
    assert agree / len(TEXTS) >= 0.8


def test_missing_file_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="make model") as error:
        SentimentClassifier.load(str(tmp_path / "nope.pt"))
    assert "python -m sentiment_model.build" in str(error.value)
    assert isinstance(error.value, RuntimeError)


def test_uncached_pretrained_model_fails_fast_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flair

    url = classifier_module.PRETRAINED_URLS["sentiment"]
    if classifier_module._reachable(url, 5.0) is None:
        pytest.skip("Flair's model server is reachable from here: loading would download the model")
    monkeypatch.setattr(flair, "cache_root", tmp_path)  # certainly not cached
    with pytest.raises(ModelUnavailable, match="SENTISTREAM_MODEL") as error:
        SentimentClassifier.load("sentiment")
    assert "internet" in str(error.value)
    assert not (tmp_path / "models" / url.rsplit("/", 1)[1]).exists()


@pytest.mark.parametrize("name", ["sentiment", "en-sentiment", "sentiment-fast"])
def test_unreachable_server_never_substitutes_a_model(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flair

    monkeypatch.setattr(flair, "cache_root", tmp_path)
    monkeypatch.setattr(classifier_module, "_reachable", lambda url, timeout: "simulated outage")
    with pytest.raises(ModelUnavailable, match="simulated outage"):
        SentimentClassifier.load(name)


def test_reachability_check_reports_a_refused_connection() -> None:
    problem = classifier_module._reachable("http://127.0.0.1:9/model.pt", 2.0)
    assert problem is not None and "ConnectionError" in problem


def test_reachability_check_gives_up_on_a_server_that_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes a load without network fail fast: the probe is abandoned at its timeout, whatever hangs."""
    never = threading.Event()

    def hangs(*_args: object, **_kwargs: object) -> None:
        never.wait()
        raise classifier_module.requests.ConnectionError("released at the end of the test")

    monkeypatch.setattr(classifier_module.requests, "head", hangs)
    answers: list[str | None] = []
    check = threading.Thread(
        target=lambda: answers.append(classifier_module._reachable("http://flair.example/m.pt", 0.1))
    )
    try:
        check.start()
        check.join(30)  # a deadline for this test, far beyond the probe's own
        assert answers == ["no answer within 0 s"]
    finally:
        never.set()
