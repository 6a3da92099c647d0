"""The runtime sentiment classifier: one Flair model loaded once, scoring batches of texts.

A spec is either a Flair pretrained name (``sentiment``, ``en-sentiment``, ``sentiment-fast``) or a
path to a ``.pt`` file. Pretrained models come from Flair's own server; when one is not cached and
that server cannot be reached, loading fails at once instead of hanging, and never falls back to
another model.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: nothing here may try a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Before torch loads OpenMP: its idle threads sleep instead of spinning. A worker shares its cores with
# Kafka clients (and often a broker), and spinning threads starve them between batches (bench: p95
# latency at half load 535 ms spinning, 238 ms sleeping).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests
import torch

if TYPE_CHECKING:
    from flair.models import TextClassifier

logger = logging.getLogger(__name__)

# Mirrors TextClassifier._fetch_model in flair 0.15.1 for the English sentiment models.
_FLAIR_MODELS = "https://nlp.informatik.hu-berlin.de/resources/models"
PRETRAINED_URLS = {
    "sentiment": f"{_FLAIR_MODELS}/sentiment-curated-distilbert/sentiment-en-mix-distillbert_4.pt",
    "en-sentiment": f"{_FLAIR_MODELS}/sentiment-curated-distilbert/sentiment-en-mix-distillbert_4.pt",
    "sentiment-fast": f"{_FLAIR_MODELS}/sentiment-curated-fasttext-rnn/sentiment-en-mix-ft-rnn_v8.pt",
}
REACHABILITY_TIMEOUT_S = 5.0


class ModelNotFound(RuntimeError):
    """The model file named by the spec does not exist."""


class ModelUnavailable(RuntimeError):
    """A pretrained model is neither cached nor downloadable from here."""


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


def _reachable(url: str, timeout: float) -> str | None:
    """None if the URL answers 200 to HEAD within `timeout`, else why not."""
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            response = requests.head(url, timeout=timeout, allow_redirects=True, headers={"User-Agent": "Flair"})
            outcome.append(None if response.status_code == 200 else f"HTTP {response.status_code}")
        except requests.RequestException as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    # requests' timeout does not bound name resolution; a daemon thread bounds everything.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome[0] if outcome else f"no answer within {timeout:.0f} s"


def _load_pretrained(name: str) -> TextClassifier:
    import flair
    from flair.models import TextClassifier

    url = PRETRAINED_URLS[name]
    cached = flair.cache_root / "models" / url.rsplit("/", 1)[1]
    if not cached.exists():
        problem = _reachable(url, REACHABILITY_TIMEOUT_S)
        if problem is not None:
            raise ModelUnavailable(
                f"Flair pretrained model {name!r} is not cached at {cached} and its server cannot be reached "
                f"({problem}). Either connect this machine to the internet once so Flair downloads and caches "
                "it, or use the offline model: unset SENTISTREAM_MODEL (the default is the project's own "
                "model, built by `make model`) or set it to the path of a .pt file."
            )
        logger.info("downloading Flair model %r from %s", name, url)
    return TextClassifier.load(name)


def _load_file(path: Path) -> TextClassifier:
    if not path.is_file():
        raise ModelNotFound(
            f"model file {path} does not exist. Build it with `make model` "
            f"(or `python -m sentiment_model.build --out {path}`), or set SENTISTREAM_MODEL to a Flair "
            f"pretrained name ({', '.join(PRETRAINED_URLS)}) on a machine with internet."
        )
    from flair.models import TextClassifier

    # A .pt file is a pickle: only load trusted files.
    return TextClassifier.load(path)


class SentimentClassifier:
    """A Flair text classifier behind a small, batch-oriented API with upper-case labels."""

    def __init__(self, model: TextClassifier, name: str):
        self._model = model
        self._label_type = model.label_type
        self._name = name

    @classmethod
    def load(cls, spec: str, torch_threads: int = 2, quantize: bool = False) -> SentimentClassifier:
        """Load the model named by `spec` once; `quantize` makes its Linear layers int8 (faster on CPU)."""
        # Process-wide: the pipeline runs one model per process.
        torch.set_num_threads(torch_threads)
        if spec in PRETRAINED_URLS:
            model, name = _load_pretrained(spec), spec
        else:
            path = Path(spec).expanduser()
            model, name = _load_file(path), path.stem
        model.eval()
        if quantize:
            # inplace: deep-copying a Flair model fails.
            torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
            name += "-int8"
        logger.info("loaded sentiment model %s (label type %r)", name, model.label_type)
        return cls(model, name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def labels(self) -> list[str]:
        """The labels the model can give, upper-case."""
        return [label.upper() for label in self._model.label_dictionary.get_items()]

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        """One prediction per text, in order. A text with no tokens gets NEUTRAL with score 0."""
        from flair.data import Sentence

        sentences = [Sentence(text) for text in texts]
        with torch.inference_mode():
            self._model.predict(sentences, mini_batch_size=batch_size, verbose=False)
        predictions = []
        for sentence in sentences:
            labels = sentence.get_labels(self._label_type)
            # Flair skips token-less sentences; they carry no sentiment to score.
            predictions.append(
                Prediction(labels[0].value.upper(), float(labels[0].score)) if labels else Prediction("NEUTRAL", 0.0)
            )
        return predictions
