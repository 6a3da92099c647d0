"""The live sources for real: ``python -m producer --source ...`` against the test broker and a local fake
network. Every post reaches the raw topic exactly once across a disconnect and across a restart of the process
(resuming from the source's Quix state), and the status topic tells what happened."""

from __future__ import annotations

from pathlib import Path

import psutil

from common.contract import Post, SourceState, SourceStatus
from common.settings import Settings
from tests.processes import running
from tests.producer.live import fake_jetstream, fake_mastodon
from tests.producer.live.fake_jetstream import did, now_us, post_event
from tests.producer.live.fake_mastodon import status
from tests.topic_reader import read_all
from tests.waiting import wait_for

FAST_STATUS = {"SENTISTREAM_STATUS_INTERVAL_SECONDS": "0.5"}


def posts_in(settings: Settings, at_least: int = 0) -> list[Post]:
    return [Post.model_validate_json(m.value()) for m in read_all(settings, settings.topic_posts, at_least=at_least)]


def statuses(settings: Settings, name: str) -> list[SourceStatus]:
    return [
        SourceStatus.model_validate_json(m.value())
        for m in read_all(settings, settings.topic_source_status)
        if m.key() == name.encode()
    ]


def latest_status(settings: Settings, name: str) -> SourceStatus | None:
    found = statuses(settings, name)
    return found[-1] if found else None


def test_bluesky_posts_arrive_once_across_a_disconnect_and_a_restart(settings: Settings, tmp_path: Path) -> None:
    start = now_us()
    log = tmp_path / "producer.log"
    with fake_jetstream.serving() as (jetstream, url):
        environment = {**FAST_STATUS, "SENTISTREAM_BLUESKY_JETSTREAM_URL": url}
        with running(settings, "producer", "--source", "bluesky", log=log, extra_env=environment):
            jetstream.wait_for_subscriptions(1, timeout=120)
            jetstream.publish(*(post_event(did(n), f"r{n}", f"post {n}", start + n, ["en"]) for n in range(5)))
            posts_in(settings, at_least=5)
            jetstream.disconnect_all()
            jetstream.wait_for_subscriptions(2, timeout=60)
            jetstream.publish(*(post_event(did(n), f"r{n}", f"post {n}", start + n, ["en"]) for n in range(5, 8)))
            posts_in(settings, at_least=8)
            wait_for(
                lambda: (s := latest_status(settings, "bluesky")) and s.duplicates == 5, 60, "the replay recognised"
            )
        # Stopped (SIGTERM): it saved its cursor and remembered ids. Posts written meanwhile wait in the replay.
        jetstream.publish(*(post_event(did(n), f"r{n}", f"post {n}", start + n, ["en"]) for n in range(8, 10)))
        with running(settings, "producer", "--source", "bluesky", log=log, extra_env=environment):
            resumed = jetstream.wait_for_subscriptions(3, timeout=120)
            posts_in(settings, at_least=10)
            restarted = wait_for(
                lambda: (s := latest_status(settings, "bluesky")) and s.posts == 2 and s,
                60,
                "the restart's two new posts sent",
            )
    assert resumed.cursor == start + 7 - 5_000_000
    # Everything after the rewound cursor came again: the two new posts were sent, the eight before recognised.
    assert restarted.duplicates == 8
    posts = posts_in(settings)
    assert sorted(post.text for post in posts) == sorted(f"post {n}" for n in range(10))
    assert len({post.id for post in posts}) == 10
    messages = read_all(settings, settings.topic_posts)
    assert all(m.key() == Post.model_validate_json(m.value()).author.encode() for m in messages)
    states = [s.state for s in statuses(settings, "bluesky")]
    assert states[0] == SourceState.STARTING and states[-1] == SourceState.STOPPED
    first_run = states[: states.index(SourceState.STOPPED) + 1]
    assert SourceState.CONNECTED in first_run and SourceState.RETRYING in first_run
    assert states.count(SourceState.STOPPED) == 2


def test_mastodon_posts_arrive_once_across_a_restart_caught_up_from_rest(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "producer.log"
    with fake_mastodon.serving() as (mastodon, url):
        environment = {**FAST_STATUS, "SENTISTREAM_MASTODON_INSTANCE_URL": url}
        with running(settings, "producer", "--source", "mastodon", "--name", "toots", log=log, extra_env=environment):
            mastodon.wait_for_streams(1, timeout=120)
            wait_for(
                lambda: (s := latest_status(settings, "toots")) and s.state == SourceState.CONNECTED, 60, "connected"
            )
            mastodon.publish(*(status(300 + n, f"toot {n}") for n in range(3)))
            posts_in(settings, at_least=3)
        mastodon.publish(*(status(303 + n, f"toot {n}") for n in range(3, 6)), stream=False)
        with running(settings, "producer", "--source", "mastodon", "--name", "toots", log=log, extra_env=environment):
            posts_in(settings, at_least=6)
            mastodon.wait_for_streams(2, timeout=60)
            wait_for(
                lambda: (s := latest_status(settings, "toots")) and s.state == SourceState.CONNECTED, 60, "connected"
            )
            mastodon.publish(status(400, "toot live"))
            posts_in(settings, at_least=7)
    posts = posts_in(settings)
    assert len(posts) == 7
    assert sorted(post.text for post in posts) == sorted([*(f"toot {n}" for n in range(6)), "toot live"])
    assert {post.source for post in posts} == {"mastodon"}
    assert [call.query.get("min_id") for call in mastodon.calls if "timelines" in call.path][-1] == ["302"]


def test_after_a_crash_the_posts_sent_since_the_last_checkpoint_are_not_sent_again(
    settings: Settings, tmp_path: Path
) -> None:
    start = now_us()
    log = tmp_path / "producer.log"

    def publish(numbers: range) -> None:
        jetstream.publish(*(post_event(did(n), f"r{n}", f"post {n}", start + n, ["en"]) for n in numbers))

    with fake_jetstream.serving() as (jetstream, url):
        environment = {**FAST_STATUS, "SENTISTREAM_BLUESKY_JETSTREAM_URL": url}
        with running(settings, "producer", "--source", "bluesky", log=log, extra_env=environment):
            jetstream.wait_for_subscriptions(1, timeout=120)
            publish(range(5))
            posts_in(settings, at_least=5)
        # A run that saves no checkpoint after its start (an hour apart), killed after sending three posts.
        rare_checkpoints = {**environment, "SENTISTREAM_LIVE_CHECKPOINT_SECONDS": "3600"}
        with running(settings, "producer", "--source", "bluesky", log=log, extra_env=rare_checkpoints) as process:
            jetstream.wait_for_subscriptions(2, timeout=120)
            publish(range(5, 8))
            posts_in(settings, at_least=8)
            wait_for(lambda: (s := latest_status(settings, "bluesky")) and s.posts == 3, 60, "three posts sent")
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()
        with running(settings, "producer", "--source", "bluesky", log=log, extra_env=environment):
            # It resumes from the killed run's start: all eight posts come again, and two new ones.
            jetstream.wait_for_subscriptions(3, timeout=120)
            publish(range(8, 10))
            posts_in(settings, at_least=10)
            restarted = wait_for(
                lambda: (s := latest_status(settings, "bluesky")) and s.posts == 2 and s, 60, "two new posts sent"
            )
    assert restarted.duplicates == 8
    posts = posts_in(settings)
    assert sorted(post.text for post in posts) == sorted(f"post {n}" for n in range(10))
    assert "did not stop cleanly: 3 posts sent after its last checkpoint recognised" in log.read_text()
