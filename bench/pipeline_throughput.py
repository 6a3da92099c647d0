"""Pipeline throughput: pre-produced posts, read from the earliest offset, until the last result.

The results are watched as the latency benchmark watches them (``ResultWatcher``), from the topic's start.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.environment import fresh_settings, produce_raw
from bench.latency import ResultWatcher
from bench.model_throughput import sample_texts
from bench.profile import WorkerProfiler
from common.contract import Post
from common.settings import PROJECT_ROOT, Settings

# The profile starts once the worker has loaded its model and runs inside the measured minute of work.
PROFILE_DELAY, PROFILE_SECONDS = 20.0, 30.0


def preproduce(settings: Settings, count: int) -> None:
    texts = sample_texts(count)
    posts = [Post(author=f"author-{i % 500}", source="bench", text=text) for i, text in enumerate(texts)]
    produce_raw(settings, settings.topic_posts, [(p.author.encode(), p.to_bytes()) for p in posts])


def measure(
    bootstrap_servers: str,
    model: str,
    posts: int,
    workers: int,
    torch_threads: int,
    profile_to: Path | None = None,
    runtime: str = "torch",
) -> dict[str, object]:
    """``profile_to``: sample the (first) classifier worker with py-spy into this file, after a warm-up.
    ``runtime``: the workers' ``SENTISTREAM_MODEL_RUNTIME``."""
    settings = fresh_settings(bootstrap_servers, model=model, torch_threads=torch_threads, model_runtime=runtime)
    preproduce(settings, posts)
    pipeline = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--workers", str(workers), "--no-stats"],
        cwd=PROJECT_ROOT,
        env=settings.child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    profiler = WorkerProfiler(pipeline.pid, PROFILE_DELAY, PROFILE_SECONDS, profile_to) if profile_to else None
    if profiler:
        profiler.start()
    watcher = ResultWatcher(settings, from_start=True)
    watcher.start()
    try:
        results = watcher.wait_for_count(posts, timeout=posts / 5 + 120)
        if profiler:
            profiler.join()
    finally:
        pipeline.terminate()
        pipeline.wait(60)
        watcher.stop()
    if len(results) < posts:
        raise RuntimeError(f"only {len(results)} of {posts} posts got a result")
    # Results of one model batch share processed_at: time from the end of the first batch to the
    # end of the last, over the posts scored in between, excludes process start and model loading.
    first = min(r.processed_at for r in results)
    last = max(r.processed_at for r in results)
    first_batch = sum(1 for r in results if r.processed_at == first)
    rate = (len(results) - first_batch) / (last - first)
    mean_batch = len(results) / len({r.processed_at for r in results})
    print(
        f"  pipeline on {runtime}, {workers} worker(s) x {torch_threads} thread(s), batch {settings.batch_size} "
        f"(forward passes of {settings.model_batch_size}): {rate:8.1f} posts/s over {last - first:.1f} s, "
        f"{mean_batch:.0f} posts per batch on average",
        flush=True,
    )
    return {
        "runtime": runtime,
        "models": sorted({r.model for r in results}),  # names the runtime: int8 variants end in -int8
        "workers": workers,
        "torch_threads": torch_threads,
        "posts": posts,
        "batch_size": settings.batch_size,
        "model_batch_size": settings.model_batch_size,
        "mean_batch": mean_batch,
        "posts_per_second": rate,
        "seconds": last - first,
        "duplicates": watcher.received - len(results),
        **({"profile": profiler.result} if profiler else {}),
    }
