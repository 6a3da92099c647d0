"""The Bluesky source against a local Jetstream, in a thread with an in-memory producer and state (no Kafka)."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from common.contract import SourceState
from producer.live.base import LiveConfig
from producer.live.bluesky import REWIND_MICROSECONDS, BlueskySource
from producer.live.filters import KeywordFilter, LanguageFilter
from tests.producer.live.fake_jetstream import POST, did, now_us, post_event, serving
from tests.producer.live.harness import STATUS_TOPIC, MemoryStore, running
from tests.waiting import wait_for


def source(url: str, **config: object) -> BlueskySource:
    options = {"status_interval": 0.2, "checkpoint_interval": 0.1, "backoff_initial": 0.1, **config}
    return BlueskySource(LiveConfig(STATUS_TOPIC, **options), jetstream_url=url)  # type: ignore[arg-type]


def test_posts_arrive_once_across_a_disconnect_and_the_rewound_replay() -> None:
    start = now_us()
    with serving() as (jetstream, url), running(source(url)) as run:
        jetstream.wait_for_subscriptions(1)
        run.wait_for_state(SourceState.CONNECTED)
        jetstream.publish(
            *(post_event(did(n % 3), f"rkey{n}", f"post number {n}", start + n, ["en"]) for n in range(10))
        )
        run.wait_for_posts(10)
        jetstream.disconnect_all()
        again = jetstream.wait_for_subscriptions(2)
        # Resumed a few seconds before the last event seen: the replay brings all ten again.
        assert again.cursor == start + 9 - REWIND_MICROSECONDS
        jetstream.publish(post_event(did(1), "rkey10", "post number 10", start + 10, ["en"]))
        posts = run.wait_for_posts(11)
        status = wait_for(lambda: run.status().duplicates == 10 and run.status(), 30, "the replay counted")
    assert [post.id for post in posts] == [f"bsky:{did(n % 3)}/rkey{n}" for n in range(11)]
    assert len(run.posts()) == 11
    assert status.posts == 11
    assert posts[0].source == "bluesky" and posts[0].author == did(0) and posts[0].text == "post number 0"
    assert run.keys()[0] == did(0).encode()
    assert posts[0].created_at == 1725911162.102
    states = [s.state for s in run.statuses()]
    assert states[0] == SourceState.STARTING and states[-1] == SourceState.STOPPED
    assert SourceState.RETRYING in states
    retrying = next(s for s in run.statuses() if s.state == SourceState.RETRYING)
    assert retrying.last_error and retrying.retry_at


def test_a_restart_resumes_from_the_saved_cursor_and_sends_nothing_twice() -> None:
    start = now_us()
    store = MemoryStore()
    with serving() as (jetstream, url):
        with running(source(url), store) as first:
            jetstream.wait_for_subscriptions(1)
            jetstream.publish(*(post_event(did(n), f"r{n}", f"hello {n}", start + n, ["en"]) for n in range(5)))
            first.wait_for_posts(5)
        jetstream.publish(*(post_event(did(n), f"r{n}", f"hello {n}", start + n, ["en"]) for n in range(5, 8)))
        with running(source(url), store) as second:
            assert jetstream.wait_for_subscriptions(2).cursor == start + 4 - REWIND_MICROSECONDS
            posts = second.wait_for_posts(3)
            wait_for(lambda: second.status().duplicates == 5, 30, "the replayed five recognised")
    assert [post.text for post in posts] == ["hello 5", "hello 6", "hello 7"]
    assert len(second.posts()) == 3


def test_bad_frames_are_counted_and_logged_and_the_source_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    start = now_us()
    with serving() as (jetstream, url), running(source(url)) as run:
        jetstream.wait_for_subscriptions(1)
        jetstream.publish(
            "{this is not json",
            '["an", "array"]',
            json.dumps({"kind": "commit", "did": did(1)}),  # no time_us
            json.dumps(
                post_event(did(1), "r1", "text", start) | {"commit": {"operation": "create", "collection": POST}}
            ),
            post_event(did(1), "r2", "still here", start + 1, ["en"]),
        )
        run.wait_for_posts(1)
        status = wait_for(lambda: run.status().bad_frames == 4 and run.status(), 30, "4 bad frames counted")
    assert [post.text for post in run.posts()] == ["still here"]
    assert status.state == SourceState.CONNECTED and status.failures == 0
    assert len(jetstream.subscriptions) == 1  # never reconnected over them
    logged = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert any("not JSON" in message for message in logged)
    assert any("no time_us" in message for message in logged)


def test_filters_languages_keywords_and_accounts() -> None:
    start = now_us()
    config = {"languages": LanguageFilter.parse(["en", "pt"]), "keywords": KeywordFilter(("coffee",))}
    followed = (did(1), did(2))
    with serving() as (jetstream, url):
        bluesky = BlueskySource(
            LiveConfig(STATUS_TOPIC, status_interval=0.2, checkpoint_interval=0.1, **config),  # type: ignore[arg-type]
            jetstream_url=url,
            accounts=followed,
        )
        with running(bluesky) as run:
            subscription = jetstream.wait_for_subscriptions(1)
            jetstream.publish(
                post_event(did(1), "a", "Coffee time", start, ["en-US"]),
                post_event(did(1), "b", "café com coffee", start + 1, ["pt-BR"]),
                post_event(did(2), "c", "Kaffee und coffee", start + 2, ["de"]),  # a language not wanted
                post_event(did(2), "d", "tea, only tea", start + 3, ["en"]),  # no keyword
                post_event(did(2), "e", "coffee?", start + 4),  # language unknown
                post_event(did(2), "f", "", start + 5, ["en"]),  # an image alone
                post_event(did(3), "g", "coffee from someone not followed", start + 6, ["en"]),
                post_event(did(1), "h", "last coffee", start + 7, ["en"]),
            )
            posts = run.wait_for_posts(4)
            status = wait_for(lambda: run.status().position == str(start + 7) and run.status(), 30, "all read")
    assert subscription.dids == list(followed) and subscription.collections == ["app.bsky.feed.post"]
    assert [(post.text, post.lang) for post in posts] == [
        ("Coffee time", "en-US"),
        ("café com coffee", "pt-BR"),
        ("coffee?", None),
        ("last coffee", "en"),
    ]
    assert status.skipped == {"language": 1, "keywords": 1, "no_text": 1}
    assert status.posts == 4


def test_refusals_back_off_exponentially_and_a_429_waits_as_long_as_it_asks() -> None:
    with serving() as (jetstream, url):
        for _ in range(3):
            jetstream.refuse_next(HTTPStatus.SERVICE_UNAVAILABLE)
        jetstream.refuse_next(HTTPStatus.TOO_MANY_REQUESTS, {"Retry-After": "2"})
        with running(source(url, backoff_initial=0.2)) as run:
            jetstream.wait_for_subscriptions(1)
            run.wait_for_state(SourceState.CONNECTED, timeout=60)
    retries = [s for s in run.statuses() if s.state == SourceState.RETRYING and s.retry_at and s.last_error_at]
    failures = sorted({s.failures: s for s in retries}.values(), key=lambda s: s.failures)
    assert [s.failures for s in failures] == [1, 2, 3, 4]
    waits = [s.retry_at - s.last_error_at for s in failures]  # type: ignore[operator]
    assert 0.15 <= waits[0] <= 0.21 and 0.3 <= waits[1] <= 0.41 and 0.6 <= waits[2] <= 0.81  # 0.2 doubling
    assert waits[3] >= 1.99  # Retry-After: 2, more than the back-off's 1.6
    assert "503" in (failures[0].last_error or "") and "rate limited" in (failures[3].last_error or "")
    connected = run.wait_for_state(SourceState.CONNECTED)
    assert connected.last_error is not None and connected.retry_at is None
