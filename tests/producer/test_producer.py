"""PostProducer against the real local broker: exact delivery, keys, failures, background control."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from common.contract import Post
from common.settings import PROJECT_ROOT, Settings
from producer.producer import PostProducer
from producer.rate import RateMeter
from producer.sources import synthetic_posts
from tests.producer.test_rate import Clock
from tests.topic_reader import read_all
from tests.waiting import wait_for


class Recorder:
    """A source that remembers what it handed out."""

    def __init__(self, posts: Iterator[Post]):
        self.posts = posts
        self.handed_out: list[Post] = []

    def __iter__(self) -> Recorder:
        return self

    def __next__(self) -> Post:
        post = next(self.posts)
        self.handed_out.append(post)
        return post


class BufferErrorCounter:
    """Wraps the confluent Producer to count the BufferErrors the PostProducer has to absorb."""

    def __init__(self, inner):
        self.inner = inner
        self.buffer_errors = 0

    def produce(self, *args, **kwargs):
        try:
            return self.inner.produce(*args, **kwargs)
        except BufferError:
            self.buffer_errors += 1
            raise

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __len__(self) -> int:  # dunder methods bypass __getattr__
        return len(self.inner)


def test_config_is_idempotent_acks_all_compressed_and_batched(settings: Settings) -> None:
    config = PostProducer(settings, synthetic_posts(), rate=None).config
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] in ("lz4", "zstd")
    assert int(config["linger.ms"]) > 0
    assert config["bootstrap.servers"] == settings.brokers


def test_n_posts_make_exactly_n_messages_keyed_by_author(settings: Settings) -> None:
    source = Recorder(synthetic_posts(seed=3))
    stats = PostProducer(settings, source, rate=None).run(count=1000)
    assert (stats.sent, stats.delivered, stats.failed, stats.queued) == (1000, 1000, 0, 0)
    assert stats.last_error is None
    messages = read_all(settings, settings.topic_posts)
    assert len(messages) == 1000
    sent = {post.id: post for post in source.handed_out}
    received = [Post.model_validate_json(message.value()) for message in messages]
    assert sorted(post.id for post in received) == sorted(sent)
    for message, post in zip(messages, received, strict=True):
        assert message.key() == post.author.encode()
        assert post == sent[post.id]


def test_a_full_queue_is_waited_out_never_dropped(settings: Settings) -> None:
    source = Recorder(synthetic_posts(seed=4))
    tiny_queue = {"queue.buffering.max.messages": 20, "linger.ms": 1}
    producer = PostProducer(settings, source, rate=None, extra_config=tiny_queue)
    counter = producer._producer = BufferErrorCounter(producer._producer)
    stats = producer.run(count=1000)
    assert counter.buffer_errors > 0
    assert (stats.sent, stats.delivered, stats.failed) == (1000, 1000, 0)
    messages = read_all(settings, settings.topic_posts)
    assert sorted(Post.model_validate_json(m.value()).id for m in messages) == sorted(p.id for p in source.handed_out)


def test_delivery_failures_are_counted_and_logged_without_flooding(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The broker does not auto-create topics, so every post to this one times out.
    missing = settings.model_copy(update={"topic_posts": f"no-such-topic-{uuid.uuid4().hex[:8]}"})
    producer = PostProducer(missing, synthetic_posts(), rate=None, extra_config={"message.timeout.ms": 1000})
    with caplog.at_level(logging.WARNING, logger="producer.producer"):
        stats = producer.run(count=50)
    assert (stats.sent, stats.delivered, stats.failed, stats.queued) == (50, 0, 50, 0)
    assert stats.last_error
    failures = [r.getMessage() for r in caplog.records if "Delivery to" in r.getMessage()]
    assert 1 <= len(failures) <= 3
    assert missing.topic_posts in failures[0] and stats.last_error in failures[0]


def test_the_reported_rate_is_the_meters_over_this_run_only() -> None:
    """The producer feeds its meter the posts it sent and starts it afresh with each run (here without a broker:
    the posts wait in the client's queue; the meter on a clock the test moves)."""
    producer = PostProducer(
        Settings(bootstrap_servers="127.0.0.1:1"), synthetic_posts(), rate=None, stats_interval=None, flush_timeout=0
    )
    clock = Clock()
    producer._meter = RateMeter(clock=clock)
    assert producer.run(count=5).sent == 5
    clock.now = 2.0
    assert producer.stats().rate == 5 / 2.0
    clock.now = 10.0
    assert producer.run(count=3).sent == 3
    clock.now = 11.0
    assert producer.stats().rate == 3 / 1.0


def test_runs_in_the_background_with_live_stats(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    producer = PostProducer(settings, synthetic_posts(), rate=100, stats_interval=0.5)
    with caplog.at_level(logging.INFO, logger="producer.producer"):
        producer.start()
        assert producer.running
        with pytest.raises(RuntimeError):
            producer.start()
        first = wait_for(lambda: (s := producer.stats()).delivered >= 10 and s, 30, "posts delivered")
        live = wait_for(lambda: (s := producer.stats()).sent > first.sent + 10 and s, 30, "more posts sent")
        wait_for(
            lambda: any(r.getMessage().startswith("Producer: sent=") for r in caplog.records), 30, "the periodic line"
        )
        final = producer.stop(timeout=30)
    assert not producer.running
    assert live.target_rate == 100  # the rate it keeps is measured by bench/producer_throughput.py
    assert live.started_at is not None and first.started_at == live.started_at <= time.time()
    assert final.sent >= live.sent and final.delivered == final.sent and final.queued == 0
    assert len(read_all(settings, settings.topic_posts)) == final.sent
    # Stopped producers can be restarted; the counters start again.
    again = producer.run(count=10)
    assert (again.sent, again.delivered) == (10, 10)


def test_a_finite_source_ends_the_run(settings: Settings) -> None:
    posts = list(itertools.islice(synthetic_posts(seed=5), 7))
    stats = PostProducer(settings, iter(posts), rate=None).run()
    assert (stats.sent, stats.delivered) == (7, 7)


def test_cli_stops_cleanly_on_sigterm(settings: Settings) -> None:
    env = {
        **os.environ,
        "SENTISTREAM_BOOTSTRAP_SERVERS": settings.brokers,
        "SENTISTREAM_TOPIC_POSTS": settings.topic_posts,
    }
    cli = subprocess.Popen(
        [sys.executable, "-m", "producer", "--rate", "200", "--source", "synthetic"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = ""
        while "Producing to" not in started and cli.poll() is None:
            started = cli.stderr.readline()
        landed = len(read_all(settings, settings.topic_posts, at_least=50))  # a SIGTERM mid-stream, not at the start
        cli.send_signal(signal.SIGTERM)
        out, err = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    line = next(line for line in out.splitlines() if line.startswith("Final stats:"))
    fields = dict(part.split("=", 1) for part in line.removeprefix("Final stats: ").split() if "=" in part)
    assert int(fields["sent"]) >= landed and fields["delivered"] == fields["sent"] and fields["failed"] == "0"
    assert "SIGTERM received" in err
    assert len(read_all(settings, settings.topic_posts)) == int(fields["sent"])
