"""The Facebook page source against a local Graph API, in a thread without Kafka (see ``harness``)."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
from pydantic import SecretStr

from common.contract import SourceState
from common.settings import Settings
from producer.__main__ import main
from producer.live.base import LiveConfig
from producer.live.facebook import FacebookPageSource, slowdown, usage
from tests.producer.live.fake_graph import (
    EPOCH,
    PAGE_ID,
    TOKEN,
    VERSION,
    FakeGraph,
    Trouble,
    graph_error,
    graph_object,
    serving,
)
from tests.producer.live.harness import STATUS_TOPIC, MemoryStore, running
from tests.waiting import wait_for

POLL = 0.2


def source(graph: FakeGraph, **options: object) -> FacebookPageSource:
    config = LiveConfig(STATUS_TOPIC, status_interval=0.2, checkpoint_interval=0.1, backoff_initial=0.1)
    options = {"poll_interval": POLL, "throttled_wait": 1.0, "comment_posts": 2, **options}
    return FacebookPageSource(
        config, PAGE_ID, SecretStr(TOKEN), graph_url=graph.base_url, api_version=VERSION, **options
    )  # type: ignore[arg-type]


def test_posts_and_comments_are_sent_once_across_a_restart() -> None:
    store = MemoryStore()
    with serving() as graph:
        graph.publish_posts(graph_object(f"{PAGE_ID}_1", 10, "Opening hours changed", writer=None))
        graph.publish_posts(graph_object(f"{PAGE_ID}_2", 20, "Love the new menu"))
        graph.publish_posts(graph_object(f"{PAGE_ID}_3", 30, None))  # a photo alone
        graph.publish_comment(f"{PAGE_ID}_2", graph_object("2_c1", 25, "me too", writer="77"))
        with running(source(graph, comment_posts=5), store) as run:
            first = run.wait_for_posts(3)
            wait_for(lambda: run.status().skipped == {"no_text": 1}, 30, "the photo counted as skipped")
        # While the source is stopped: one post in the same second as the last one sent, a later one, and
        # comments; the feed and the comments are asked `since` the last second, so they repeat it.
        graph.publish_posts(graph_object(f"{PAGE_ID}_4", 30, "Same second as the photo"))
        graph.publish_posts(graph_object(f"{PAGE_ID}_5", 40, "Closed on Monday"))
        graph.publish_comment(f"{PAGE_ID}_2", graph_object("2_c2", 25, "same second as the first comment"))
        graph.publish_comment(f"{PAGE_ID}_5", graph_object("5_c1", 45, "why?", writer="88"))
        with running(source(graph, comment_posts=5), store) as run_again:
            second = run_again.wait_for_posts(4)
            # A further poll at least: nothing more comes.
            polls = len(graph.calls_to("/feed"))
            wait_for(lambda: len(graph.calls_to("/feed")) > polls + 1, 30, "two more polls")
            second = run_again.posts()
            keys = run_again.keys()
    assert [(p.id, p.author, p.text, p.created_at) for p in first] == [
        ("facebook:1000_1", PAGE_ID, "Opening hours changed", EPOCH + 10),  # no `from`: the page's
        ("facebook:1000_2", "42", "Love the new menu", EPOCH + 20),
        ("facebook:2_c1", "77", "me too", EPOCH + 25),
    ]
    assert [p.id for p in second] == ["facebook:1000_4", "facebook:1000_5", "facebook:2_c2", "facebook:5_c1"]
    assert keys == [b"42", b"42", b"42", b"88"]
    assert {p.source for p in first + second} == {"facebook"}
    assert run_again.status().duplicates == 0


def test_every_page_of_a_long_feed_is_read_with_the_token_in_the_header_only() -> None:
    with serving() as graph:
        graph.publish_posts(graph_object(f"{PAGE_ID}_0", 0, "the first post"))
        with running(source(graph, comment_posts=0)) as run:
            run.wait_for_posts(1)
            graph.publish_posts(*(graph_object(f"{PAGE_ID}_{n}", n, f"post {n}") for n in range(1, 251)))
            posts = run.wait_for_posts(251)
    assert [p.text for p in posts[1:]] == [f"post {n}" for n in range(1, 251)]  # oldest first
    # Each poll since the first post's second starts at the feed's first page; the one that found the 250 posts
    # read on page by page (a slow box may poll again before they are published: a poll of one page).
    polls: list[list[str | None]] = []
    for call in graph.calls_to("/feed"):
        if call.query.get("since") == str(EPOCH):
            offset = call.query.get("offset")
            if offset is None:
                polls.append([offset])
            else:
                polls[-1].append(offset)
    assert polls[:-1] == [[None]] * (len(polls) - 1)
    assert polls[-1] == [None, "100", "200"]
    assert all(call.authorization == f"Bearer {TOKEN}" and "access_token" not in call.query for call in graph.calls)


def test_a_throttling_error_waits_as_long_as_asked_before_the_next_request() -> None:
    with serving() as graph, running(source(graph, throttled_wait=1.5)) as run:
        run.wait_for_state(SourceState.CONNECTED)
        graph.trouble(graph_error(32, "Page request limit reached"))
        status = wait_for(
            lambda: next((s for s in run.statuses() if s.last_error), None), 30, "the throttling error in the status"
        )
        gap = graph.gap_after_trouble()
        graph.publish_posts(graph_object(f"{PAGE_ID}_1", 1, "after the wait"))
        run.wait_for_posts(1)
    assert "throttled" in status.last_error and "Graph API error 32" in status.last_error
    assert status.state == SourceState.RETRYING
    assert gap >= 1.5


def test_a_429_waits_its_retry_after_and_high_usage_slows_the_polls() -> None:
    with serving() as graph, running(source(graph)) as run:
        run.wait_for_state(SourceState.CONNECTED)
        graph.trouble(Trouble(429, b"{}", {"Retry-After": "2"}))
        gap = graph.gap_after_trouble()
        graph.usage_percent = 95  # the slowdown at 95 %: 1 + 9 * 45 / 50 = 9.1 poll intervals
        slowed = len(graph.calls_to("/feed"))
        wait_for(lambda: len(graph.calls_to("/feed")) > slowed + 2, 60, "two slowed polls")
    assert gap >= 2
    feed = graph.calls_to("/feed")[slowed:]
    assert min(b.at - a.at for a, b in itertools.pairwise(feed)) >= POLL * slowdown(95)


def test_bad_answers_are_counted_and_the_source_goes_on() -> None:
    with serving() as graph, running(source(graph, comment_posts=0)) as run:
        run.wait_for_state(SourceState.CONNECTED)
        graph.trouble(
            Trouble(200, b"<html>Service Unavailable</html>"),
            Trouble(200, json.dumps({"paging": {}}).encode()),
            Trouble(502, b"Bad Gateway"),
            graph_error(190, "Error validating access token: Session has expired", status=400),
        )
        graph.publish_posts(
            {"created_time": "2023-11-14T22:13:20+0000", "message": "no id"}, graph_object(f"{PAGE_ID}_9", 9, "fine")
        )
        run.wait_for_posts(1)
        status = wait_for(lambda: (s := run.status()).bad_frames >= 3 and s, 30, "the bad answers counted")
        errors = [s.last_error for s in run.statuses() if s.last_error]
    assert [p.id for p in run.posts()] == ["facebook:1000_9"]
    assert status.bad_frames == 3  # not JSON, no data list, an object without its id
    assert any("HTTP 502" in error for error in errors)
    assert any("Graph API error 190" in error for error in errors)


def test_the_comments_of_the_newest_posts_only_are_followed() -> None:
    with serving() as graph, running(source(graph, comment_posts=2)) as run:
        graph.publish_posts(*(graph_object(f"{PAGE_ID}_{n}", n, f"post {n}") for n in range(1, 4)))
        run.wait_for_posts(3)
        for n in range(1, 4):
            # Older on newer posts: each post's comments keep their own mark.
            graph.publish_comment(f"{PAGE_ID}_{n}", graph_object(f"{n}_c", 20 - n, f"on post {n}"))
        posts = run.wait_for_posts(5)
        polls = len(graph.calls_to("/feed"))
        wait_for(lambda: len(graph.calls_to("/feed")) > polls + 1, 30, "another poll")
        duplicates = run.status().duplicates
    assert [p.text for p in run.posts()[3:]] == ["on post 2", "on post 3"]
    assert duplicates == 0  # no comment was asked for twice
    assert not graph.calls_to(f"{PAGE_ID}_1/comments") and posts[3:] == run.posts()[3:]


def test_comments_of_a_deleted_post_are_no_longer_asked_for() -> None:
    with serving() as graph, running(source(graph)) as run:
        graph.publish_posts(graph_object(f"{PAGE_ID}_1", 1, "soon deleted"))
        run.wait_for_posts(1)
        graph.deleted.add(f"{PAGE_ID}_1")
        asked = len(graph.calls_to(f"{PAGE_ID}_1/comments"))
        polls = len(graph.calls_to("/feed"))
        wait_for(lambda: len(graph.calls_to("/feed")) > polls + 2, 30, "more polls")
        state = run.status().state
    assert len(graph.calls_to(f"{PAGE_ID}_1/comments")) <= asked + 1
    assert state == SourceState.CONNECTED


def test_the_token_is_never_in_a_status_or_a_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), serving() as graph, running(source(graph)) as run:
        graph.trouble(
            Trouble(200, json.dumps({"paging": {"next": f"{graph.base_url}/x?access_token={TOKEN}"}}).encode())
        )
        graph.publish_posts(graph_object(f"{PAGE_ID}_1", 1, "hello"))
        run.wait_for_posts(1)
        statuses = run.statuses()
    assert all(TOKEN not in status.model_dump_json() for status in statuses)
    assert "<token>" in caplog.text  # the malformed answer was logged, without the token
    assert TOKEN not in repr(source(graph)) and TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (0.0, 0.0)),
        ({"x-app-usage": '{"call_count": 28, "total_time": 25, "total_cputime": 25}'}, (28.0, 0.0)),
        ({"x-page-usage": '{"call_count": 101}'}, (101.0, 0.0)),
        (
            {
                "x-business-use-case-usage": json.dumps(
                    {
                        "1000": [
                            {"type": "pages", "call_count": 60, "total_time": 99, "estimated_time_to_regain_access": 3}
                        ]
                    }
                )
            },
            (99.0, 180.0),
        ),
        ({"x-app-usage": "not json", "x-business-use-case-usage": '{"1": "odd"}'}, (0.0, 0.0)),
    ],
)
def test_usage_headers(headers: dict[str, str], expected: tuple[float, float]) -> None:
    assert usage(headers) == expected


def test_slowdown_grows_from_half_the_allowance() -> None:
    assert [slowdown(p) for p in (0, 50, 75, 100, 150)] == [1.0, 1.0, 5.5, 10.0, 10.0]


def test_the_page_comes_from_the_option_or_the_settings_and_the_token_from_the_settings_only() -> None:
    settings = Settings(facebook_page_id="1000", facebook_page_token=SecretStr(TOKEN), facebook_comment_posts=3)
    from_settings = FacebookPageSource.from_settings(settings)
    chosen = FacebookPageSource.from_settings(settings, page_id="2000", keywords="menu", name="fb-cafe")
    assert (from_settings.page_id, from_settings.comment_posts, from_settings.name) == ("1000", 3, "facebook")
    assert (chosen.page_id, chosen.config.keywords.keywords, chosen.name) == ("2000", ("menu",), "fb-cafe")
    assert TOKEN not in f"{chosen!r} {chosen.describe()} {vars(chosen)}"


def test_the_command_line_refuses_a_facebook_source_without_page_or_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTISTREAM_FACEBOOK_PAGE_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["--source", "facebook", "--page-id", "1000"])
    assert exit_.value.code == 2
    assert "SENTISTREAM_FACEBOOK_PAGE_TOKEN" in capsys.readouterr().err
