"""Each network's messages turned into the sources' events, malformed ones included; rate-limit headers."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest

from producer.live.base import BadFrame, Draft, Passed, network_post_id, parse_timestamp
from producer.live.bluesky import parse_frame
from producer.live.mastodon import StreamError, parse_message, parse_status
from producer.live.net import retry_after
from tests.producer.live.fake_jetstream import did, identity_event, post_event
from tests.producer.live.fake_mastodon import status

T = 1_725_911_162_329_308


def test_a_jetstream_post_becomes_a_draft() -> None:
    frame = json.dumps(post_event(did(1), "3l3qo2vutsw2b", "Hello Bluesky", T, ["en", "de"]))
    assert parse_frame(frame) == Draft(
        id=f"bsky:{did(1)}/3l3qo2vutsw2b",
        author=did(1),
        text="Hello Bluesky",
        created_at=1725911162.102,
        languages=("en", "de"),
        position=T,
    )


def test_jetstream_events_that_are_not_new_posts_move_the_cursor_only() -> None:
    for event in (
        identity_event(did(1), T),
        post_event(did(1), "r", "", T, operation="delete"),
        post_event(did(1), "r", "edited", T, operation="update"),
        post_event(did(1), "r", "", T, collection="app.bsky.feed.like"),
    ):
        assert parse_frame(json.dumps(event)) == Passed(position=T)


def test_a_jetstream_post_without_languages_or_a_readable_time() -> None:
    event = post_event(did(1), "r", "text", T, langs=None, created_at="yesterday")
    draft = parse_frame(json.dumps(event))
    assert isinstance(draft, Draft)
    assert draft.languages == () and draft.created_at == T / 1e6


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"kind": "commit"}', "no time_us"),
        ('{"time_us": "soon", "kind": "commit"}', "no time_us"),
        (json.dumps({"time_us": T, "kind": "commit", "did": "nobody"}), "a commit without its did or commit"),
        (
            json.dumps(
                {
                    **post_event(did(1), "r", "x", T),
                    "commit": {"operation": "create", "collection": "app.bsky.feed.post"},
                }
            ),
            "a post without its rkey or record",
        ),
        (
            json.dumps(
                post_event(did(1), "r", "x", T)
                | {"commit": post_event(did(1), "r", "x", T)["commit"] | {"record": {"text": 5}}}
            ),
            "a post whose text is not a string",
        ),
    ],
)
def test_malformed_jetstream_frames(frame: str | bytes, reason: str) -> None:
    event = parse_frame(frame)
    assert isinstance(event, BadFrame) and event.reason == reason


def test_a_mastodon_update_becomes_a_draft() -> None:
    message = json.dumps({"stream": ["public"], "event": "update", "payload": json.dumps(status(7, "Hi <b>there</b>"))})
    assert parse_message(message, "social.example") == Draft(
        id="mastodon:social.example/7",
        author="alice@social.example",
        text="Hi there",
        created_at=1_700_000_007,
        languages=("en",),
        position="7",
    )


def test_mastodon_authors_boosts_and_unknown_languages() -> None:
    remote = parse_status(status(8, "x", acct="bob@elsewhere.example", language=None), "social.example")
    assert isinstance(remote, Draft)
    assert remote.author == "bob@elsewhere.example" and remote.languages == ()
    boost = parse_status(status(9, "", reblog=status(3, "original")), "social.example")
    assert boost == Passed("boost", position="9")


def test_mastodon_stream_messages_other_than_updates() -> None:
    assert parse_message('{"stream": ["public"], "event": "delete", "payload": "7"}', "i") == Passed()
    assert parse_message('{"stream": ["public"], "event": "status.update", "payload": "{}"}', "i") == Passed()
    with pytest.raises(StreamError, match="Missing access token"):
        parse_message('{"error": "Missing access token", "status": 401}', "i")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("<html>", "not JSON"),
        ('"update"', "not a JSON object"),
        ('{"event": "update", "payload": "{broken"}', "an update whose payload is not JSON"),
        ('{"event": "update", "payload": "[]"}', "a status that is not a JSON object"),
        ('{"event": "update", "payload": "{\\"id\\": \\"1\\"}"}', "a status without its id or account"),
        (
            json.dumps({"event": "update", "payload": json.dumps({**status(1, "x"), "content": None})}),
            "a status whose content is not a string",
        ),
    ],
)
def test_malformed_mastodon_messages(message: str, reason: str) -> None:
    event = parse_message(message, "i")
    assert isinstance(event, BadFrame) and event.reason == reason


def test_post_ids_stay_within_the_contract() -> None:
    assert network_post_id("bsky", "did:plc:x/r") == "bsky:did:plc:x/r"
    long = network_post_id("bsky", "did:web:" + "x" * 200 + "/r")
    assert len(long) <= 128 and long.startswith("bsky:sha256:")
    assert long == network_post_id("bsky", "did:web:" + "x" * 200 + "/r")


def test_timestamps() -> None:
    assert parse_timestamp("2024-09-09T19:46:02.102Z") == 1725911162.102
    assert parse_timestamp("2024-09-09T19:46:02") == 1725911162.0  # no zone: UTC
    assert parse_timestamp("2024-09-09T21:46:02+02:00") == 1725911162.0
    assert parse_timestamp("not a time") is None and parse_timestamp(None) is None


def test_how_long_a_rate_limit_asks_to_wait() -> None:
    assert retry_after({"Retry-After": "30"}) == 30
    assert 55 <= retry_after({"retry-after": formatdate(time.time() + 60, usegmt=True)}) <= 60
    reset = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 120))
    assert 115 <= retry_after({"X-RateLimit-Reset": reset}) <= 120
    assert retry_after({"X-RateLimit-Reset": "2000-01-01T00:00:00Z"}) == 0  # already past
    assert retry_after({}, default=7) == 7
    assert retry_after({"Retry-After": "soon"}, default=7) == 7
