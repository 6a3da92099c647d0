"""Flair's pretrained English sentiment models: where they come from and whether they can be loaded here.

Light to import (no torch, no flair): the app asks :func:`pretrained_unavailable` before it lets anyone choose
one, and the classifier (``sentiment_model.classifier``) asks the same before it loads one. A pretrained model
loads when it is in Flair's cache, or when Flair's server can be reached to download it; otherwise it fails at
once with the reason, and nothing is ever substituted for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import requests

# Mirrors TextClassifier._fetch_model in flair 0.15.1 for the English sentiment models.
_FLAIR_MODELS = "https://nlp.informatik.hu-berlin.de/resources/models"
PRETRAINED_URLS = {
    "sentiment": f"{_FLAIR_MODELS}/sentiment-curated-distilbert/sentiment-en-mix-distillbert_4.pt",
    "en-sentiment": f"{_FLAIR_MODELS}/sentiment-curated-distilbert/sentiment-en-mix-distillbert_4.pt",
    "sentiment-fast": f"{_FLAIR_MODELS}/sentiment-curated-fasttext-rnn/sentiment-en-mix-ft-rnn_v8.pt",
}
REACHABILITY_TIMEOUT_S = 5.0

Probe = Callable[[str, float], str | None]


def flair_cache_root() -> Path:
    """Where Flair keeps what it downloads, as ``flair.cache_root`` is set when flair is imported (flair 0.15.1,
    ``flair/__init__.py``): ``FLAIR_CACHE_ROOT``, else ``~/.flair``."""
    return Path(os.getenv("FLAIR_CACHE_ROOT", Path(Path.home(), ".flair")))


def cached_file(name: str, cache_root: Path | None = None) -> Path:
    """Where Flair caches pretrained model ``name``: ``<cache root>/models/<the URL's file name>``
    (``flair.file_utils.cached_path`` with ``cache_dir=Path("models")``)."""
    root = flair_cache_root() if cache_root is None else cache_root
    return root / "models" / PRETRAINED_URLS[name].rsplit("/", 1)[1]


def reachable(url: str, timeout: float) -> str | None:
    """None if the URL answers 200 to HEAD within ``timeout``, else why not."""
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            response = requests.head(url, timeout=timeout, allow_redirects=True, headers={"User-Agent": "Flair"})
            outcome.append(None if response.status_code == 200 else f"HTTP {response.status_code}")
        except requests.RequestException as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    # requests' timeout does not bound name resolution; a daemon thread bounds everything.
    thread = threading.Thread(target=probe, name="flair-reachability", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome[0] if outcome else f"no answer within {timeout:.0f} s"


def pretrained_unavailable(
    name: str,
    cache_root: Path | None = None,
    timeout: float = REACHABILITY_TIMEOUT_S,
    probe: Probe = reachable,
) -> str | None:
    """Why Flair pretrained model ``name`` cannot be loaded here, or None when it can (cached, or its server
    answers). Takes at most about ``timeout`` seconds; ``cache_root`` defaults to Flair's (see
    :func:`flair_cache_root`)."""
    if name not in PRETRAINED_URLS:
        return f"{name!r} is not one of Flair's pretrained sentiment models ({', '.join(PRETRAINED_URLS)})"
    cached = cached_file(name, cache_root)
    if cached.exists():
        return None
    problem = probe(PRETRAINED_URLS[name], timeout)
    if problem is None:
        return None
    return f"Flair pretrained model {name!r} is not cached at {cached} and its server cannot be reached ({problem})."
