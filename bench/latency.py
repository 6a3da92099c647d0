"""End-to-end latency at a steady rate, and the ad-hoc (Analyze text) round trip under that load."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer

from bench.environment import fresh_settings
from common.contract import Post, SentimentResult
from common.settings import PROJECT_ROOT, Settings
from producer.producer import PostProducer
from producer.sources import dataset_posts


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "count": len(values)}


class ResultWatcher(threading.Thread):
    """Reads the results topic (from its end, or ``from_start``), noting when each result became visible to a
    consumer; ``received`` counts every result read, repeats included."""

    def __init__(self, settings: Settings, from_start: bool = False):
        super().__init__(daemon=True)
        self._consumer = Consumer(
            {
                **settings.kafka_client_config(),
                "group.id": f"bench-watch-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest" if from_start else "latest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([settings.topic_results], on_assign=self._on_assign)
        self.assigned = threading.Event()
        self.seen: dict[str, tuple[float, SentimentResult]] = {}
        self.received = 0
        self._arrived = threading.Condition()
        self._stopping = threading.Event()

    def _on_assign(self, _consumer, _partitions) -> None:
        self.assigned.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            # One message per call: consume(n, timeout) holds what arrived until n came or the timeout passed,
            # which added up to that timeout to every latency this watcher measured.
            message = self._consumer.poll(0.1)
            if message is not None and message.error() is None:
                seen_at = time.time()
                result = SentimentResult.model_validate_json(message.value())
                with self._arrived:
                    self.seen[result.post_id] = (seen_at, result)
                    self.received += 1
                    self._arrived.notify_all()
        self._consumer.close()

    def wait_for(self, post_id: str, timeout: float) -> float | None:
        with self._arrived:
            self._arrived.wait_for(lambda: post_id in self.seen, timeout)
            return self.seen[post_id][0] if post_id in self.seen else None

    def wait_for_count(self, posts: int, timeout: float) -> list[SentimentResult]:
        """The results of ``posts`` distinct posts (fewer if ``timeout`` passes first)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.seen) >= posts, timeout)
            return [result for _, result in self.seen.values()]

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)


def measure(
    bootstrap_servers: str,
    model: str,
    rate: float,
    seconds: float,
    adhoc_submissions: int,
    warmup: float = 5.0,
    runtime: str = "torch",
) -> dict[str, object]:
    settings = fresh_settings(bootstrap_servers, model=model, auto_offset_reset="latest", model_runtime=runtime)
    pipeline = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--no-stats"],
        cwd=PROJECT_ROOT,
        env=settings.child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = ResultWatcher(settings)
    watcher.start()
    try:
        watcher.assigned.wait(60)
        # The pipeline is ready once a probe post comes back.
        probe_producer = Producer({**settings.kafka_client_config(), "linger.ms": 0})
        probe = Post(author="bench", source="probe", text="ready?")
        deadline = time.monotonic() + 180
        while watcher.wait_for(probe.id, 0) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the pipeline never answered")
            probe_producer.produce(settings.topic_posts, key=b"bench", value=probe.to_bytes())
            probe_producer.flush(10)
            watcher.wait_for(probe.id, 5)

        stream = PostProducer(settings, dataset_posts(loop=True), rate, stats_interval=None)
        stream.start(duration=seconds + warmup)
        time.sleep(warmup)
        measured_from = time.time()
        adhoc = []
        for _ in range(adhoc_submissions):
            post = Post(author="adhoc-user", source="adhoc", text="How does this product make me feel today?")
            sent_at = time.time()
            probe_producer.produce(settings.topic_posts, key=post.author.encode(), value=post.to_bytes())
            probe_producer.poll(0)
            seen_at = watcher.wait_for(post.id, 30)
            if seen_at is not None:
                adhoc.append(seen_at - sent_at)
            time.sleep(max(0.0, seconds / max(adhoc_submissions, 1) - (time.time() - sent_at)))
        probe_producer.flush(10)
        while stream.running:
            time.sleep(0.2)
        time.sleep(2)  # the tail of the stream
    finally:
        pipeline.terminate()
        pipeline.wait(60)
        watcher.stop()
    stream_results = [(seen_at, r) for seen_at, r in watcher.seen.values() if r.source not in ("adhoc", "probe")]
    steady = [(seen_at, r) for seen_at, r in stream_results if r.produced_at >= measured_from]
    end_to_end = [seen_at - r.produced_at for seen_at, r in steady]
    in_pipeline = [r.processed_at - r.produced_at for _, r in steady]
    e2e = percentiles(end_to_end)
    print(
        f"  latency on {runtime} at {rate:.0f} posts/s: p50 {e2e['p50'] * 1000:.0f} ms, p95 {e2e['p95'] * 1000:.0f} ms, "
        f"p99 {e2e['p99'] * 1000:.0f} ms over {len(end_to_end)} posts",
        flush=True,
    )
    result = {
        "runtime": runtime,
        "rate": rate,
        "seconds": seconds,
        "end_to_end_seconds": e2e,
        "produced_to_scored_seconds": percentiles(in_pipeline),
        "adhoc_lost": adhoc_submissions - len(adhoc),
    }
    if adhoc:
        result["adhoc_round_trip_seconds"] = (
            percentiles(adhoc) if len(adhoc) > 1 else {"p50": adhoc[0], "p95": adhoc[0]}
        )
        print(
            f"  ad-hoc round trip: p50 {result['adhoc_round_trip_seconds']['p50'] * 1000:.0f} ms, "
            f"p95 {result['adhoc_round_trip_seconds']['p95'] * 1000:.0f} ms over {len(adhoc)} submissions",
            flush=True,
        )
    return result
