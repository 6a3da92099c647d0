"""Raw model throughput: posts/s of batch prediction at several batch sizes, in one process.

Each call scores one batch of ``batch_size`` posts in arrival order, as a stream must. Handing Flair
the whole list at once would let it sort every post by length first (less padding), a speed no
stream can have without waiting for the posts; that figure is kept too, as ``sorted_whole_list``.
"""

from __future__ import annotations

import itertools
import time

from producer.sources import dataset_posts

BATCH_SIZES = (1, 8, 16, 32, 64)


def sample_texts(count: int) -> list[str]:
    return [post.text for post in itertools.islice(dataset_posts(loop=True), count)]


def measure(model: str, texts_per_size: int, torch_threads: int, quantize: bool = False) -> dict[str, object]:
    from sentiment_model.classifier import SentimentClassifier

    classifier = SentimentClassifier.load(model, torch_threads, quantize=quantize)
    texts = sample_texts(texts_per_size)
    classifier.predict(texts[:64], batch_size=32)  # warm-up: lazy initialisation, allocator
    posts_per_second, sorted_whole_list = {}, {}
    for batch_size in BATCH_SIZES:
        started = time.perf_counter()
        for start in range(0, len(texts), batch_size):
            classifier.predict(texts[start : start + batch_size], batch_size=batch_size)
        posts_per_second[batch_size] = len(texts) / (time.perf_counter() - started)
        started = time.perf_counter()
        classifier.predict(texts, batch_size=batch_size)
        sorted_whole_list[batch_size] = len(texts) / (time.perf_counter() - started)
        print(f"  model {classifier.name} batch {batch_size:>3}: {posts_per_second[batch_size]:8.1f} posts/s "
              f"(whole list sorted by length: {sorted_whole_list[batch_size]:.1f})", flush=True)
    best = max(posts_per_second, key=posts_per_second.get)
    return {"model": classifier.name, "texts": len(texts), "posts_per_second": posts_per_second,
            "sorted_whole_list": sorted_whole_list, "best_batch_size": best, "best_posts_per_second": posts_per_second[best]}
