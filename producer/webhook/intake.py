"""What a request body holds: one post or a JSON array of them, each checked exactly as the pipeline checks a post.

A batch is all or nothing: one invalid post refuses the whole request (400, with the reason of every invalid
post), so a client fixes and resends the same batch and never has to work out which part was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.contract import InvalidPost, Post, decode_post

DEFAULT_SOURCE = "webhook"


@dataclass(frozen=True)
class ItemProblem:
    index: int
    reason: str
    detail: str


class Refused(Exception):
    """The request is refused as a whole: ``status`` (400 or 413), an error code, a detail and per-post problems."""

    def __init__(self, status: int, error: str, detail: str, items: tuple[ItemProblem, ...] = ()):
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.items = items


def read_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except RecursionError:
        raise Refused(400, "too_deeply_nested", "JSON nesting too deep to parse") from None
    except ValueError as exc:  # not JSON, not UTF-8, or a number too long to convert
        raise Refused(400, "invalid_json", str(exc)[:200]) from None


def check_post(item: object, max_text_chars: int) -> Post:
    """``item`` (a decoded JSON value) as a :class:`Post`, or :class:`InvalidPost` with the pipeline's reason."""
    # Through the pipeline's own decoder: what is accepted here is never dead-lettered there.
    return decode_post(json.dumps(item).encode(), max_text_chars)


def parse_posts(body: bytes, *, max_posts: int, max_text_chars: int) -> list[Post]:
    """The posts of a POST /posts body (``source`` defaults to "webhook"), or :class:`Refused`."""
    document = read_json(body)
    items = document if isinstance(document, list) else [document]
    if not items:
        raise Refused(400, "empty_batch", "the array holds no posts")
    if len(items) > max_posts:
        raise Refused(413, "too_many_posts", f"{len(items)} posts in one request, the limit is {max_posts}")
    posts, problems = [], []
    for index, item in enumerate(items):
        try:
            posts.append(
                check_post({"source": DEFAULT_SOURCE, **item} if isinstance(item, dict) else item, max_text_chars)
            )
        except InvalidPost as exc:
            problems.append(ItemProblem(index, exc.reason.value, exc.detail))
    if problems:
        raise Refused(
            400,
            "invalid_posts",
            f"{len(problems)} of {len(items)} posts are invalid; none was written",
            tuple(problems),
        )
    return posts
