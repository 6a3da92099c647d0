"""Facebook's page webhooks: the subscription handshake, the payload signature, and feed changes as posts.

Facebook calls ``GET`` once to verify the subscription (``hub.mode=subscribe``, ``hub.verify_token``,
``hub.challenge`` echoed back), then ``POST``s each batch of changes signed with the app secret
(``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>``). New posts and comments with a message become posts;
other changes (reactions, edits, removals, changes without text) are skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping

from pydantic import SecretStr

from common.contract import InvalidPost, Post
from producer.live.base import network_post_id
from producer.live.facebook import NETWORK
from producer.webhook.intake import check_post

logger = logging.getLogger(__name__)

# Feed items that carry what someone wrote (``reaction``, ``like`` and the rest carry none).
WRITTEN_ITEMS = frozenset({"status", "post", "comment", "photo", "video", "share"})


def challenge(params: Mapping[str, str], verify_token: SecretStr) -> str | None:
    """The challenge to echo if this is Facebook verifying the subscription with our token, else None."""
    token = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        token.encode(), verify_token.get_secret_value().encode()
    ):
        return None
    return params.get("hub.challenge", "")


def signature_valid(body: bytes, header: str | None, app_secret: SecretStr) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256=").encode(), expected.encode())


def feed_posts(document: object, max_text_chars: int) -> tuple[list[Post], int]:
    """The new posts and comments of a page webhook payload, and how many changes were skipped."""
    posts: list[Post] = []
    skipped = 0
    entries = document.get("entry") if isinstance(document, dict) and document.get("object") == "page" else None
    for entry in entries if isinstance(entries, list) else ():
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else ():
            post = _written(change, entry.get("id"), max_text_chars)
            if post is None:
                skipped += 1
            else:
                posts.append(post)
    return posts, skipped


def _written(change: object, page_id: object, max_text_chars: int) -> Post | None:
    value = change.get("value") if isinstance(change, dict) and change.get("field") == "feed" else None
    if not isinstance(value, dict) or value.get("verb") != "add" or value.get("item") not in WRITTEN_ITEMS:
        return None
    graph_id = value.get("comment_id") if value.get("item") == "comment" else value.get("post_id")
    author = value.get("from", {}).get("id") if isinstance(value.get("from"), dict) else None
    if not isinstance(graph_id, str) or "message" not in value:
        return None
    # The ids and authors of the page source's posts: a post both see is the same post.
    fields = {
        "id": network_post_id(NETWORK, graph_id),
        "author": author or page_id,
        "source": NETWORK,
        "text": value["message"],
    }
    if "created_time" in value:
        fields["created_at"] = value["created_time"]
    try:
        return check_post(fields, max_text_chars)
    except InvalidPost as exc:
        logger.info("Skipped Facebook change %s: %s", graph_id, exc)
        return None
