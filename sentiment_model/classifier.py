"""The runtime sentiment classifier: one Flair model loaded once, scoring batches of texts.

A spec is either a Flair pretrained name (``sentiment``, ``en-sentiment``, ``sentiment-fast``) or a
path to a ``.pt`` file. Pretrained models come from Flair's own server; when one is not cached and
that server cannot be reached, loading fails at once instead of hanging, and never falls back to
another model.

A ``.pt`` model's transformer encoder can run in ONNX Runtime instead of torch (``runtime``: ``onnx``,
``onnx-int8`` or ``auto``; ``sentiment_model.runtimes`` decides which, from the checked exports beside the file).
The classification head stays in torch: it is one small matrix product.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests  # noqa: F401  (tests/sentiment_model/test_classifier.py patches requests.head through this module)
import torch

from sentiment_model.pretrained import PRETRAINED_URLS, REACHABILITY_TIMEOUT_S, cached_file, pretrained_unavailable
from sentiment_model.pretrained import reachable as _reachable
from sentiment_model.registry import model_version
from sentiment_model.runtimes import ONNX_INT8, TORCH, Choice, choose

if TYPE_CHECKING:
    from flair.models import TextClassifier

logger = logging.getLogger(__name__)


class ModelNotFound(RuntimeError):
    """The model file named by the spec does not exist."""


class ModelUnavailable(RuntimeError):
    """A pretrained model is neither cached nor downloadable from here."""


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


def _load_pretrained(name: str) -> TextClassifier:
    import flair
    from flair.models import TextClassifier

    # _reachable looked up here, at the call: tests replace it to simulate an outage.
    problem = pretrained_unavailable(name, flair.cache_root, REACHABILITY_TIMEOUT_S, probe=_reachable)
    if problem is not None:
        raise ModelUnavailable(
            f"{problem} Either connect this machine to the internet once so Flair downloads and caches "
            "it, or use the offline model: unset SENTISTREAM_MODEL (the default is the project's own "
            "model, built by `make model`) or set it to the path of a .pt file."
        )
    if not cached_file(name, flair.cache_root).exists():
        logger.info("downloading Flair model %r from %s", name, PRETRAINED_URLS[name])
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


def _choose_runtime(model: TextClassifier, path: Path, runtime: str) -> Choice:
    from sentiment_model.onnx_encoder import is_exportable

    if not is_exportable(model.embeddings):
        return Choice(TORCH, None, f"its embeddings ({type(model.embeddings).__name__}) are not a transformer encoder")
    return choose(runtime, path)


class SentimentClassifier:
    """A Flair text classifier behind a small, batch-oriented API with upper-case labels."""

    def __init__(self, model: TextClassifier, name: str, version: str | None = None, runtime: str = TORCH):
        self._model = model
        self._label_type = model.label_type
        self._name = name
        self._version = version
        self._runtime = runtime

    @classmethod
    def load(
        cls, spec: str, torch_threads: int = 2, quantize: bool = False, runtime: str = TORCH
    ) -> SentimentClassifier:
        """Load the model named by `spec` once, its encoder run by `runtime` (``torch``, ``onnx``, ``onnx-int8``
        or ``auto``: see ``sentiment_model.runtimes``) with `torch_threads` threads; `quantize` makes a torch
        model's Linear layers int8 (faster on CPU)."""
        # Process-wide: the pipeline runs one model per process.
        torch.set_num_threads(torch_threads)
        if spec in PRETRAINED_URLS:
            model, name = _load_pretrained(spec), spec
            version = Path(PRETRAINED_URLS[spec]).stem  # Flair names a model's file by its release
            choice = Choice(TORCH, None, "a pretrained model has no ONNX export here") if runtime != TORCH else None
        else:
            path = Path(spec).expanduser()
            model, name = _load_file(path), path.stem
            version = model_version(path)
            choice = _choose_runtime(model, path, runtime) if runtime != TORCH else None
        if choice is not None:
            logger.info("model %s runs on %s (%s was asked for): %s", name, choice.runtime, runtime, choice.why)
        if choice is not None and choice.onnx_file is not None:
            return cls._on_onnx(model, name, version, choice.runtime, choice.onnx_file, torch_threads)
        model.eval()
        if quantize:
            # inplace: deep-copying a Flair model fails.
            torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
            name += "-int8"
        logger.info("loaded sentiment model %s, version %s (label type %r)", name, version, model.label_type)
        return cls(model, name, version)

    @classmethod
    def load_onnx(cls, path: Path, runtime: str, onnx_file: Path, threads: int = 2) -> SentimentClassifier:
        """The model file at `path` with its encoder run from `onnx_file`, whether or not that passed a check (for
        the export's own check)."""
        torch.set_num_threads(threads)
        return cls._on_onnx(_load_file(path), path.stem, model_version(path), runtime, onnx_file, threads)

    @classmethod
    def _on_onnx(
        cls, model: TextClassifier, name: str, version: str, runtime: str, onnx_file: Path, threads: int
    ) -> SentimentClassifier:
        from sentiment_model.onnx_encoder import run_in_onnx

        # The torch encoder goes (its memory with it); the head keeps reading the same embedding names.
        model.embeddings = run_in_onnx(model.embeddings, onnx_file, threads)
        model.eval()
        if runtime == ONNX_INT8:
            name += "-int8"  # as for torch's int8: results say which variant scored them
        logger.info(
            "loaded sentiment model %s, version %s (label type %r), encoder in ONNX Runtime from %s",
            name,
            version,
            model.label_type,
            onnx_file,
        )
        return cls(model, name, version, runtime)

    @property
    def name(self) -> str:
        return self._name

    @property
    def runtime(self) -> str:
        """What runs the encoder: ``torch``, ``onnx`` or ``onnx-int8``."""
        return self._runtime

    @property
    def encoder(self) -> Any:
        """The model's embeddings: what turns texts into vectors, and nearly all of its work."""
        return self._model.embeddings

    @property
    def version(self) -> str | None:
        """Which build of the model: its file's (``registry.model_version``), or a pretrained model's release."""
        return self._version

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
