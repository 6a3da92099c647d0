"""Dashboard consumer: CPU and peak memory to ingest N results from Kafka, and the page snapshot read time."""

from __future__ import annotations

import threading
import time

import psutil

from bench.environment import fresh_settings, produce_raw
from common.contract import LABELS, SentimentResult
from dashboard.charts import resample
from dashboard.results_feed import ResultsFeed


def _results(count: int) -> list[tuple[bytes, bytes]]:
    now = time.time()
    messages = []
    for i in range(count):
        created = now - 600 + i * 600 / count  # spread over the dashboard's history window
        result = SentimentResult(
            post_id=f"bench-{i}",
            author=f"author-{i % 997}",
            source=("twitter", "reddit", "mastodon")[i % 3],
            text="a short post of the usual length, about a hundred characters, give or take a few",
            label=LABELS[i % 3],
            score=0.5 + (i % 50) / 100,
            model="bench",
            created_at=created,
            produced_at=created + 0.01,
            processed_at=created + 0.05,
        )
        messages.append((result.author.encode(), result.to_bytes()))
    return messages


def measure(bootstrap_servers: str, results: int, snapshots: int = 50) -> dict[str, object]:
    settings = fresh_settings(bootstrap_servers, dashboard_history_minutes=15)
    produce_raw(settings, settings.topic_results, _results(results))
    process = psutil.Process()
    rss_before = process.memory_info().rss
    peak = {"rss": rss_before}
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.05):
            peak["rss"] = max(peak["rss"], process.memory_info().rss)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    cpu_before = process.cpu_times()
    started = time.perf_counter()
    feed = ResultsFeed(settings).start()
    rss_at_half = None
    try:
        while (ingested := feed.status().results) < results:
            if rss_at_half is None and ingested >= results // 2:
                rss_at_half = process.memory_info().rss
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"ingested only {ingested} of {results} results in 10 minutes")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu_after = process.cpu_times()
        rss_end = process.memory_info().rss
        timings = []
        for _ in range(snapshots):
            began = time.perf_counter()
            snapshot = feed.snapshot(900)
            resample(snapshot.series, snapshot.since, snapshot.now, 10)
            timings.append((time.perf_counter() - began) * 1000)
    finally:
        feed.stop()
        done.set()
        sampler.join()
    timings.sort()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    # Bounded: the second half of the ingest must not grow memory like the first (allow 64 MiB of noise).
    bounded = rss_at_half is not None and rss_end - rss_at_half < 64 * 2**20
    figures = {
        "results": results,
        "seconds": elapsed,
        "results_per_second": results / elapsed,
        "cpu_seconds": cpu,
        "rss_growth_mib": (peak["rss"] - rss_before) / 2**20,
        "rss_growth_second_half_mib": ((rss_end - rss_at_half) / 2**20) if rss_at_half else None,
        "bounded": bounded,
        "snapshot_ms": {
            "p50": timings[len(timings) // 2],
            "p95": timings[int(len(timings) * 0.95) - 1],
            "max": timings[-1],
        },
    }
    print(
        f"  dashboard: {figures['results_per_second']:,.0f} results/s, {cpu:.1f} s CPU, peak RSS +{figures['rss_growth_mib']:.0f} MiB, "
        f"snapshot p95 {figures['snapshot_ms']['p95']:.1f} ms",
        flush=True,
    )
    return figures
