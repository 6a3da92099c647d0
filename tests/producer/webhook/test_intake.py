"""What a request body may hold: one post or a batch, each checked as the pipeline checks posts."""

from __future__ import annotations

import json

import pytest

from producer.webhook.intake import Refused, parse_posts


def parse(document: object, max_posts: int = 10, max_text_chars: int = 100) -> list:
    return parse_posts(json.dumps(document).encode(), max_posts=max_posts, max_text_chars=max_text_chars)


def refusal(body: bytes, max_posts: int = 10) -> Refused:
    with pytest.raises(Refused) as caught:
        parse_posts(body, max_posts=max_posts, max_text_chars=100)
    return caught.value


def test_one_post_keeps_what_the_client_gave_and_defaults_the_source() -> None:
    [post] = parse({"id": "client-1", "author": "ann", "text": "lovely", "created_at": 1700000000.5})
    assert (post.id, post.author, post.source, post.text, post.created_at) == (
        "client-1",
        "ann",
        "webhook",
        "lovely",
        1700000000.5,
    )


def test_a_batch_keeps_its_order_a_given_source_and_gives_missing_ids_fresh_ones() -> None:
    posts = parse([{"author": "a", "text": "one", "source": "crm"}, {"author": "b", "text": "two"}])
    assert [(p.author, p.source) for p in posts] == [("a", "crm"), ("b", "webhook")]
    assert posts[0].id != posts[1].id


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"text": "no author"}, "missing_field"),
        ({"author": "a"}, "missing_field"),
        ({"author": 7, "text": "x"}, "wrong_type"),
        ({"author": "a", "text": " \u200b "}, "empty_text"),
        ({"author": "a", "text": "x" * 101}, "text_too_long"),
        ({"author": "a", "text": "x", "created_at": -5}, "invalid_field"),
        ({"author": "a", "text": "x", "schema_version": 2}, "unknown_schema_version"),
        ({"author": "", "text": "x"}, "invalid_field"),
        ("just a string", "not_an_object"),
    ],
)
def test_each_invalid_post_is_named_with_the_pipelines_reason(item: object, reason: str) -> None:
    refused = refusal(json.dumps(item).encode())
    assert (refused.status, refused.error) == (400, "invalid_posts")
    assert [(problem.index, problem.reason) for problem in refused.items] == [(0, reason)]


def test_one_invalid_post_refuses_the_batch_and_every_invalid_one_is_listed() -> None:
    batch = [{"author": "a", "text": "fine"}, {"text": "no author"}, {"author": "c", "text": "fine"}, 5]
    refused = refusal(json.dumps(batch).encode())
    assert [(problem.index, problem.reason) for problem in refused.items] == [
        (1, "missing_field"),
        (3, "not_an_object"),
    ]
    assert "2 of 4" in refused.detail and "author" in refused.items[0].detail


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe\xfa", 400, "invalid_json"),
        (b"[" * 100_000, 400, "too_deeply_nested"),
        (b"[]", 400, "empty_batch"),
        (json.dumps([{"author": "a", "text": "x"}] * 11).encode(), 413, "too_many_posts"),
    ],
)
def test_bodies_that_are_no_posts_at_all(body: bytes, status: int, error: str) -> None:
    refused = refusal(body)
    assert (refused.status, refused.error, refused.items) == (status, error, ())
