"""Pipeline throughput: pre-produced posts, read from the earliest offset, until the last result."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.environment import fresh_settings, produce_raw
from bench.model_throughput import sample_texts
from common.contract import Post, SentimentResult
from common.settings import PROJECT_ROOT, Settings
from common.topic_reader import read_topic


def preproduce(settings: Settings, count: int) -> None:
    texts = sample_texts(count)
    posts = [Post(author=f"author-{i % 500}", source="bench", text=text) for i, text in enumerate(texts)]
    produce_raw(settings, settings.topic_posts, [(p.author.encode(), p.to_bytes()) for p in posts])


def measure(bootstrap_servers: str, model: str, posts: int, workers: int, batch_size: int, torch_threads: int) -> dict[str, object]:
    settings = fresh_settings(bootstrap_servers, model=model, batch_size=batch_size, torch_threads=torch_threads)
    preproduce(settings, posts)
    pipeline = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--workers", str(workers), "--no-stats"],
        cwd=PROJECT_ROOT, env=settings.child_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        messages = read_topic(settings, settings.topic_results, posts, timeout=posts / 5 + 120)
    finally:
        pipeline.terminate()
        pipeline.wait(60)
    results = [SentimentResult.model_validate_json(m.value()) for m in messages]
    if len({r.post_id for r in results}) < posts:
        raise RuntimeError(f"only {len({r.post_id for r in results})} of {posts} posts got a result")
    # Results of one model batch share processed_at: time from the end of the first batch to the
    # end of the last, over the posts scored in between, excludes process start and model loading.
    first = min(r.processed_at for r in results)
    last = max(r.processed_at for r in results)
    first_batch = sum(1 for r in results if r.processed_at == first)
    rate = (len(results) - first_batch) / (last - first)
    print(f"  pipeline, {workers} worker(s) x {torch_threads} torch thread(s), batch {batch_size}: {rate:8.1f} posts/s "
          f"over {last - first:.1f} s", flush=True)
    return {"workers": workers, "torch_threads": torch_threads, "posts": posts, "batch_size": batch_size, "posts_per_second": rate,
            "seconds": last - first, "duplicates": len(results) - len({r.post_id for r in results})}
