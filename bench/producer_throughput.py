"""Producer: the most posts/s and MB/s of small JSON posts to one broker (posts built beforehand), and how
closely a paced producer keeps its target rate (also after a change of rate while it runs)."""

from __future__ import annotations

import itertools
import time

from bench.environment import fresh_settings
from producer.producer import PostProducer
from producer.sources import synthetic_posts


def measure(bootstrap_servers: str, posts: int) -> dict[str, object]:
    settings = fresh_settings(bootstrap_servers)
    # Built up front so that the figure is the producer's, not the synthetic generator's.
    batch = list(itertools.islice(synthetic_posts(seed=7), posts))
    payload_bytes = sum(len(post.to_bytes()) for post in batch)
    producer = PostProducer(settings, iter(batch), rate=None, stats_interval=None)
    started = time.perf_counter()
    stats = producer.run(count=posts)
    elapsed = time.perf_counter() - started
    rate = stats.delivered / elapsed
    print(
        f"  producer: {rate:10.0f} posts/s, {payload_bytes / elapsed / 1e6:.1f} MB/s "
        f"({stats.delivered} delivered, {stats.failed} failed)",
        flush=True,
    )
    return {
        "posts": posts,
        "posts_per_second": rate,
        "megabytes_per_second": payload_bytes / elapsed / 1e6,
        "mean_post_bytes": payload_bytes / posts,
        "failed": stats.failed,
    }


def pacing(bootstrap_servers: str, rates: tuple[float, ...], seconds: float) -> dict[str, object]:
    """Posts/s sent at each target rate over ``seconds``, then at the first rate and the last after a switch."""
    settings = fresh_settings(bootstrap_servers)
    runs = []
    for rate in rates:
        stats = PostProducer(settings, synthetic_posts(), rate=rate, stats_interval=None).run(duration=seconds)
        runs.append({"target": rate, "posts_per_second": (stats.sent - 1) / seconds, "failed": stats.failed})
    producer = PostProducer(settings, synthetic_posts(), rate=rates[0], stats_interval=None)
    producer.start()
    time.sleep(seconds)
    sent_at_switch = producer.stats().sent
    producer.set_rate(rates[-1])
    time.sleep(seconds)
    sent_at_stop = producer.stats().sent
    stopped = producer.stop()
    switch = {
        "from": rates[0],
        "to": rates[-1],
        "before": (sent_at_switch - 1) / seconds,
        "after": (sent_at_stop - sent_at_switch) / seconds,
        "failed": stopped.failed,
    }
    measured = [(r["target"], r["posts_per_second"]) for r in runs]
    measured += [(switch["from"], switch["before"]), (switch["to"], switch["after"])]
    worst = max(abs(rate - target) / target for target, rate in measured)
    print(
        "  paced producer: "
        + ", ".join(f"{r['target']:g}/s -> {r['posts_per_second']:.1f}" for r in runs)
        + f"; switched {switch['from']:g} -> {switch['to']:g}/s: {switch['before']:.1f} -> {switch['after']:.1f}",
        flush=True,
    )
    return {"seconds": seconds, "runs": runs, "switch": switch, "worst_error": worst}
