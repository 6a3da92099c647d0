"""What the webhook refuses, served for real but without Kafka: nothing here gets as far as writing."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.settings import Settings
from tests.producer.webhook.server import call, post_json, serving

TOKEN = "s3cret-token-value"
APP_SECRET = "app-secret-value"
VERIFY_TOKEN = "verify-token-value"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    # Nothing listens on port 1: a request that got as far as Kafka would answer 503, never 4xx.
    settings = Settings(
        bootstrap_servers="127.0.0.1:1",
        state_dir=tmp_path,
        webhook_token=SecretStr(TOKEN),
        webhook_max_body_bytes=4096,
        webhook_max_posts=3,
        facebook_app_secret=SecretStr(APP_SECRET),
        facebook_verify_token=SecretStr(VERIFY_TOKEN),
    )
    with serving(settings) as base:
        yield base


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_invalid_posts_get_400_with_each_reason(url: str) -> None:
    answer = post_json(f"{url}/posts", [{"author": "a", "text": "fine"}, {"author": "b"}], AUTH)
    assert answer.status == 400
    assert answer.json() == {
        "error": "invalid_posts",
        "detail": "1 of 2 posts are invalid; none was written",
        "items": [{"index": 1, "reason": "missing_field", "detail": "text: Field required"}],
    }
    assert call(f"{url}/posts", "POST", b"{oops", AUTH).json()["error"] == "invalid_json"


def test_a_body_over_the_byte_limit_gets_413_whether_its_length_is_declared_or_not(url: str) -> None:
    big = json.dumps({"author": "a", "text": "x" * 5000}).encode()
    declared = call(f"{url}/posts", "POST", big, AUTH)
    chunked = call(f"{url}/posts", "POST", iter([big[:3000], big[3000:]]), AUTH)  # no Content-Length
    assert (declared.status, declared.json()["error"]) == (413, "body_too_large")
    assert (chunked.status, chunked.json()["error"]) == (413, "body_too_large")


def test_more_posts_than_the_limit_get_413(url: str) -> None:
    answer = post_json(f"{url}/posts", [{"author": "a", "text": "x"}] * 4, AUTH)
    assert (answer.status, answer.json()["error"]) == (413, "too_many_posts")


def test_without_the_right_bearer_token_401(url: str) -> None:
    post = {"author": "a", "text": "x"}
    missing = post_json(f"{url}/posts", post)
    wrong = post_json(f"{url}/posts", post, {"Authorization": "Bearer not-it"})
    assert (missing.status, wrong.status) == (401, 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"


def test_health_counts_the_refusals(url: str) -> None:
    post_json(f"{url}/posts", {"author": "a"}, AUTH)
    post_json(f"{url}/posts", {"author": "a", "text": "x"})
    assert call(f"{url}/health").json() == {"status": "ok", "accepted": 0, "rejected": 2, "errors": 0}


def test_facebook_verification_echoes_the_challenge_only_for_the_verify_token(url: str) -> None:
    def verify(mode: str, token: str) -> tuple[int, bytes]:
        query = urllib.parse.urlencode({"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"})
        answer = call(f"{url}/facebook?{query}")
        return answer.status, answer.body

    assert verify("subscribe", VERIFY_TOKEN) == (200, b"1158201444")
    assert verify("subscribe", "guess")[0] == 403
    assert verify("unsubscribe", VERIFY_TOKEN)[0] == 403


def test_a_facebook_delivery_without_the_apps_signature_gets_403(url: str) -> None:
    body = json.dumps({"object": "page", "entry": []}).encode()
    forged = "sha256=" + hmac.new(b"another-secret", body, hashlib.sha256).hexdigest()
    assert call(f"{url}/facebook", "POST", body).status == 403
    assert call(f"{url}/facebook", "POST", body, {"X-Hub-Signature-256": forged}).status == 403


def test_the_facebook_route_is_off_until_configured(tmp_path: Path) -> None:
    with serving(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)) as base:
        assert call(f"{base}/facebook?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1").status == 404
        assert call(f"{base}/facebook", "POST", b"{}").status == 404
        # and without a token, /posts needs none: the post gets as far as Kafka, which is not there.
        assert call(f"{base}/health").json()["errors"] == 0
