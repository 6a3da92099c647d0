"""The Mastodon source against a local instance (REST and streaming), in a thread without Kafka."""

from __future__ import annotations

from pydantic import SecretStr

from common.contract import SourceState
from producer.live.base import LiveConfig
from producer.live.mastodon import MastodonSource
from tests.producer.live.fake_mastodon import serving, status
from tests.producer.live.harness import STATUS_TOPIC, MemoryStore, running
from tests.waiting import wait_for


def source(url: str, **options: object) -> MastodonSource:
    config = LiveConfig(STATUS_TOPIC, status_interval=0.2, checkpoint_interval=0.1, backoff_initial=0.1)
    return MastodonSource(config, url, **{"poll_interval": 0.2, **options})  # type: ignore[arg-type]


def test_streamed_posts_then_a_disconnect_caught_up_from_rest_each_once() -> None:
    with serving() as (mastodon, url), running(source(url, access_token=SecretStr("s3cret"))) as run:
        mastodon.wait_for_streams(1)
        run.wait_for_state(SourceState.CONNECTED)
        mastodon.publish(*(status(100 + n, f"streamed <b>post</b> {n}") for n in range(3)))
        run.wait_for_posts(3)
        # Missed by the stream (as if written while the source was away): only the REST timeline has them.
        # Published before the disconnect, so the catch-up after it cannot run before they are there.
        mastodon.publish(*(status(103 + n, f"missed post {n}") for n in range(45)), stream=False)
        mastodon.disconnect_all()
        mastodon.wait_for_streams(2)
        posts = run.wait_for_posts(48)
        mastodon.publish(status(200, "streamed again"))
        posts = run.wait_for_posts(49)
    assert [post.text for post in posts[:4]] == [
        "streamed post 0",
        "streamed post 1",
        "streamed post 2",
        "missed post 0",
    ]
    assert posts[-1].text == "streamed again"
    assert len({post.id for post in posts}) == len(run.posts()) == 49
    instance = url.removeprefix("http://")  # 127.0.0.1:<port>
    assert posts[0].id == f"mastodon:{instance}/100"
    assert posts[0].author == f"alice@{instance}" and run.keys()[0] == f"alice@{instance}".encode()
    assert posts[0].source == "mastodon"
    assert posts[0].created_at == 1_700_000_100
    assert posts[0].lang == "en"
    # The catch-up paged from the last post seen: min_id 102, then the newest of the first page.
    min_ids = [call.query["min_id"][0] for call in mastodon.calls if "min_id" in call.query]
    assert min_ids[:2] == ["102", "142"]
    assert {call.authorization for call in mastodon.calls + mastodon.streams} == {"Bearer s3cret"}
    assert all("s3cret" not in status.model_dump_json() for status in run.statuses())


def test_when_streaming_is_refused_it_polls_the_rest_timeline_then_tries_streaming_again() -> None:
    with serving() as (mastodon, url):
        mastodon.refuse_streaming = 1
        with running(source(url, streaming_retry=1.5)) as run:
            connected = wait_for(
                lambda: next((s for s in run.statuses() if s.state == SourceState.CONNECTED), None),
                30,
                "the first connected status",
            )
            assert "polling REST" in connected.detail and "401" in connected.detail
            mastodon.publish(*(status(10 + n, f"polled {n}") for n in range(3)), stream=False)
            run.wait_for_posts(3)
            mastodon.wait_for_streams(2)  # streaming tried again, and accepted
            wait_for(lambda: run.status().detail.endswith("streaming"), 30, "streaming")
            mastodon.publish(status(20, "streamed"))
            posts = run.wait_for_posts(4)
    assert [post.text for post in posts] == ["polled 0", "polled 1", "polled 2", "streamed"]
    assert all(s.state != SourceState.RETRYING for s in run.statuses())  # the fallback is no failure


def test_a_rest_429_is_waited_out_then_the_catch_up_goes_on() -> None:
    store = MemoryStore({"checkpoint": {"position": "100", "recent": []}})
    with serving() as (mastodon, url):
        mastodon.publish(*(status(101 + n, f"missed {n}") for n in range(5)), stream=False)
        mastodon.rate_limited = 2
        with running(source(url), store) as run:
            posts = run.wait_for_posts(5)
    retrying = [s for s in run.statuses() if s.state == SourceState.RETRYING]
    assert retrying and "429" in (retrying[0].last_error or "")
    # X-RateLimit-Reset said one second from then: no sooner than that.
    assert retrying[0].retry_at - retrying[0].last_error_at >= 0.5  # type: ignore[operator]
    assert [post.text for post in posts] == [f"missed {n}" for n in range(5)]
    # The same page asked for again after each 429, never skipped.
    assert [call.query.get("min_id") for call in mastodon.calls if "timelines" in call.path] == [["100"]] * 3


def test_malformed_stream_messages_are_counted_and_the_stream_goes_on() -> None:
    with serving() as (mastodon, url), running(source(url)) as run:
        mastodon.wait_for_streams(1)
        run.wait_for_state(SourceState.CONNECTED)
        mastodon.publish(
            "not json at all",
            '{"stream": ["public"], "event": "update", "payload": "{truncated"}',
            '{"stream": ["public"], "event": "update", "payload": "{\\"id\\": \\"5\\"}"}',
            '{"stream": ["public"], "event": "delete", "payload": "4"}',
            status(6, "fine"),
        )
        run.wait_for_posts(1)
        final = wait_for(lambda: run.status().bad_frames == 3 and run.status(), 30, "3 bad frames")
    assert [post.text for post in run.posts()] == ["fine"]
    assert final.state == SourceState.CONNECTED and len(mastodon.streams) == 1


def test_a_hashtag_timeline_streams_and_pages_that_tag_only_and_skips_boosts() -> None:
    with serving() as (mastodon, url), running(source(url, timeline="hashtag", hashtag="#Cats")) as run:
        stream = mastodon.wait_for_streams(1)
        run.wait_for_state(SourceState.CONNECTED)
        mastodon.publish(
            status(1, "a cat", tags=("Cats",)),
            status(2, "a dog", tags=("dogs",)),
            status(3, "", tags=("Cats",), reblog=status(1, "a cat", tags=("Cats",))),
            status(4, "another cat", tags=("Cats",)),
        )
        run.wait_for_posts(2)
        final = wait_for(lambda: run.status().skipped.get("boost") == 1 and run.status(), 30, "the boost skipped")
    assert stream.query == {"stream": ["hashtag"], "tag": ["Cats"]}
    assert {call.path for call in mastodon.calls if "timelines" in call.path} == {"/api/v1/timelines/tag/Cats"}
    assert [post.text for post in run.posts()] == ["a cat", "another cat"]
    assert final.position == "4"


def test_a_restart_catches_up_from_the_saved_position_without_repeating() -> None:
    store = MemoryStore()
    with serving() as (mastodon, url):
        with running(source(url), store) as first:
            mastodon.wait_for_streams(1)
            first.wait_for_state(SourceState.CONNECTED)
            mastodon.publish(*(status(50 + n, f"before {n}") for n in range(3)))
            first.wait_for_posts(3)
        mastodon.publish(*(status(53 + n, f"while stopped {n}") for n in range(2)), stream=False)
        calls_before = len(mastodon.calls)
        with running(source(url), store) as second:
            posts = second.wait_for_posts(2)
    assert [post.text for post in posts] == ["while stopped 0", "while stopped 1"]
    assert len(second.posts()) == 2
    # The restart reads the timeline from the saved position (the first run began at the newest page, no min_id);
    # a retry or a later catch-up, should the stream reconnect, never from before it.
    min_ids = [call.query.get("min_id") for call in mastodon.calls[calls_before:] if "timelines" in call.path]
    assert min_ids[:1] == [["52"]] and all(later in (["52"], ["54"]) for later in min_ids[1:])
