"""Raw model throughput: posts/s of batch prediction at several batch sizes, in one process.

Three ways of handing the same texts to the model, at each forward-pass size (``batch_size``):

- ``arrival_order``: one call per ``batch_size`` posts, in the order they came (how a stream that
  scores each batch as it fills must run);
- ``sorted_batches``: one call per ``pipeline_batch`` posts, which the model sorts by length before
  running its forward passes (what the pipeline does with the posts of one checkpoint);
- ``sorted_whole_list``: every text in one call, sorted by length over the whole list (the least
  padding there can be: the ceiling for these texts).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable

from producer.sources import dataset_posts

BATCH_SIZES = (1, 8, 16, 32, 64)
MODES = ("arrival_order", "sorted_batches", "sorted_whole_list")


def sample_texts(count: int) -> list[str]:
    return [post.text for post in itertools.islice(dataset_posts(loop=True), count)]


def _posts_per_second(texts: list[str], score: Callable[[list[str]], object], call_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), call_size):
        score(texts[start : start + call_size])
    return len(texts) / (time.perf_counter() - started)


def measure(
    model: str,
    texts_per_size: int,
    torch_threads: int,
    pipeline_batch: int,
    quantize: bool = False,
    runtime: str = "torch",
) -> dict[str, object]:
    """``runtime``: what runs the encoder (``sentiment_model.runtimes``); one the model cannot run on is an error,
    not a silent fallback to another."""
    from sentiment_model.classifier import SentimentClassifier

    classifier = SentimentClassifier.load(model, torch_threads, quantize=quantize, runtime=runtime)
    if classifier.runtime != runtime:
        raise RuntimeError(f"{model} cannot run on {runtime} (see the log for why)")
    texts = sample_texts(texts_per_size)
    classifier.predict(texts[:64], batch_size=32)  # warm-up: lazy initialisation, allocator
    figures: dict[str, dict[int, float]] = {mode: {} for mode in MODES}
    for batch_size in BATCH_SIZES:
        score = functools.partial(classifier.predict, batch_size=batch_size)
        call_sizes = {
            "arrival_order": batch_size,
            "sorted_batches": max(pipeline_batch, batch_size),
            "sorted_whole_list": len(texts),
        }
        for mode in MODES:
            figures[mode][batch_size] = _posts_per_second(texts, score, call_sizes[mode])
        print(
            f"  model {classifier.name} on {runtime}, batch {batch_size:>3}: "
            + ", ".join(f"{mode.replace('_', ' ')} {figures[mode][batch_size]:6.1f}" for mode in MODES)
            + " posts/s",
            flush=True,
        )
    best_mode, best_size = max(
        ((mode, size) for mode in MODES for size in BATCH_SIZES), key=lambda m: figures[m[0]][m[1]]
    )
    arrival = figures["arrival_order"]
    best_arrival = max(arrival, key=arrival.get)
    return {
        "model": classifier.name,
        "runtime": runtime,
        "texts": len(texts),
        "pipeline_batch": pipeline_batch,
        **figures,
        "best": {"mode": best_mode, "batch_size": best_size, "posts_per_second": figures[best_mode][best_size]},
        "best_arrival_order": {"batch_size": best_arrival, "posts_per_second": arrival[best_arrival]},
    }
