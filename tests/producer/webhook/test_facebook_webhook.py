"""Facebook's page webhooks: feed changes as posts (the page source's ids), signed deliveries to the topic."""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import SecretStr

from common.contract import Post
from common.settings import Settings
from producer.webhook.facebook import feed_posts
from tests.producer.webhook.server import call, serving
from tests.topic_reader import read_all

APP_SECRET = "app-secret-value"


def change(item: str, verb: str = "add", **value: object) -> dict[str, object]:
    return {"field": "feed", "value": {"item": item, "verb": verb, **value}}


def delivery(*changes: dict[str, object], page: str = "1000") -> dict[str, object]:
    return {"object": "page", "entry": [{"id": page, "time": 1_700_000_100, "changes": list(changes)}]}


WRITER = {"id": "42", "name": "Ann"}
PAYLOAD = delivery(
    change("status", post_id="1000_1", message="We open at nine", created_time=1_700_000_000, **{"from": WRITER}),
    change(
        "comment",
        post_id="1000_1",
        comment_id="1000_1_7",
        parent_id="1000_1",
        message="Great!",
        created_time=1_700_000_050,
        **{"from": {"id": "77", "name": "Bo"}},
    ),
    change("photo", post_id="1000_2", message="caption only, no writer", created_time=1_700_000_060),
    change("reaction", post_id="1000_1", reaction_type="like", **{"from": WRITER}),
    change("status", verb="edited", post_id="1000_1", message="We open at ten", **{"from": WRITER}),
    change("photo", post_id="1000_3", created_time=1_700_000_070),  # no message
    change("status", post_id="1000_4", message="   ", created_time=1_700_000_080),  # nothing to read
    {"field": "ratings", "value": {"verb": "add"}},
)


def test_new_posts_and_comments_with_a_message_become_posts_the_rest_is_skipped() -> None:
    posts, skipped = feed_posts(PAYLOAD, max_text_chars=5000)
    assert [(p.id, p.author, p.source, p.text, p.created_at) for p in posts] == [
        ("facebook:1000_1", "42", "facebook", "We open at nine", 1_700_000_000),
        ("facebook:1000_1_7", "77", "facebook", "Great!", 1_700_000_050),
        ("facebook:1000_2", "1000", "facebook", "caption only, no writer", 1_700_000_060),
    ]
    assert skipped == 5


def test_payloads_that_are_not_page_feeds_give_nothing() -> None:
    for document in (None, [], {"object": "user", "entry": []}, {"object": "page", "entry": "x"}, delivery("x")):
        assert feed_posts(document, max_text_chars=5000)[0] == []


def test_a_signed_delivery_is_in_the_topic_when_facebook_gets_its_200(settings: Settings) -> None:
    signed = settings.model_copy(update={"facebook_app_secret": SecretStr(APP_SECRET)})
    body = json.dumps(PAYLOAD).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with serving(signed) as url:
        answer = call(f"{url}/facebook", "POST", body, {"X-Hub-Signature-256": signature})
        again = call(f"{url}/facebook", "POST", body, {"X-Hub-Signature-256": signature})  # Facebook retries
    assert (answer.status, again.status) == (200, 200)
    assert answer.json() == {"accepted": ["facebook:1000_1", "facebook:1000_1_7", "facebook:1000_2"], "skipped": 5}
    messages = read_all(settings, settings.topic_posts)
    assert sorted((m.key(), Post.model_validate_json(m.value()).id) for m in messages) == [
        (b"1000", "facebook:1000_2"),
        (b"42", "facebook:1000_1"),
        (b"77", "facebook:1000_1_7"),
    ]
