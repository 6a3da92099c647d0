"""Producer: the most posts/s and MB/s of small JSON posts to one broker (posts built beforehand)."""

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
    print(f"  producer: {rate:10.0f} posts/s, {payload_bytes / elapsed / 1e6:.1f} MB/s "
          f"({stats.delivered} delivered, {stats.failed} failed)", flush=True)
    return {"posts": posts, "posts_per_second": rate, "megabytes_per_second": payload_bytes / elapsed / 1e6,
            "mean_post_bytes": payload_bytes / posts, "failed": stats.failed}
