"""Bluesky posts through Jetstream, Bluesky's public JSON websocket (no account needed).

The source asks Jetstream for ``app.bsky.feed.post`` records (and only the accounts' when ``accounts`` names
DIDs) from a time cursor, and turns each ``create`` commit into a post: id ``bsky:<did>/<rkey>``, author the
DID, ``created_at`` the record's ``createdAt``, languages its ``langs``. The position is the last event's
``time_us``; a reconnection or a restart asks for the stream from ``REWIND`` before it, as Jetstream advises
(its cursors are times, and events at the boundary may otherwise be missed), and the replayed posts are
recognised by id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

from common.settings import Settings
from producer.live.base import (
    BadFrame,
    Connected,
    Draft,
    Event,
    LiveConfig,
    LiveSource,
    Passed,
    Position,
    network_post_id,
    parse_timestamp,
)
from producer.live.filters import comma_list
from producer.live.net import WEBSOCKET_ERRORS, frames, open_websocket

logger = logging.getLogger(__name__)

POST_COLLECTION = "app.bsky.feed.post"
REWIND_MICROSECONDS = 5_000_000
# Every DID goes in the subscribe URL: more would make a URL servers refuse.
MAX_ACCOUNTS = 100


def parse_frame(frame: str | bytes) -> Event:
    """One Jetstream message as an event of the source."""
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return BadFrame("not JSON", frame)
    if not isinstance(message, dict):
        return BadFrame("not a JSON object", frame)
    time_us = message.get("time_us")
    if type(time_us) is not int or time_us <= 0:
        return BadFrame("no time_us", frame)
    if message.get("kind") != "commit":  # identity and account events reach every subscriber
        return Passed(position=time_us)
    did, commit = message.get("did"), message.get("commit")
    if not isinstance(did, str) or not did.startswith("did:") or not isinstance(commit, dict):
        return BadFrame("a commit without its did or commit", frame)
    if commit.get("collection") != POST_COLLECTION or commit.get("operation") != "create":
        return Passed(position=time_us)  # an edit, a deletion, or another collection
    rkey, record = commit.get("rkey"), commit.get("record")
    if not isinstance(rkey, str) or not rkey or not isinstance(record, dict):
        return BadFrame("a post without its rkey or record", frame)
    text = record.get("text")
    if not isinstance(text, str):
        return BadFrame("a post whose text is not a string", frame)
    langs = record.get("langs")
    return Draft(
        id=network_post_id("bsky", f"{did}/{rkey}"),
        author=did,
        text=text,
        created_at=parse_timestamp(record.get("createdAt")) or time_us / 1e6,
        languages=tuple(lang for lang in langs if isinstance(lang, str)) if isinstance(langs, list) else (),
        position=time_us,
    )


class BlueskySource(LiveSource):
    """Bluesky's new posts, through Jetstream, optionally only those of ``accounts`` (DIDs)."""

    network = "bluesky"
    network_errors = (*LiveSource.network_errors, *WEBSOCKET_ERRORS)

    def __init__(self, config: LiveConfig, jetstream_url: str, accounts: tuple[str, ...] = (), name: str | None = None):
        if bad := [account for account in accounts if not account.startswith("did:")]:
            raise ValueError(f"Bluesky accounts are DIDs (did:plc:...), not {', '.join(bad)}")
        if len(accounts) > MAX_ACCOUNTS:
            raise ValueError(f"at most {MAX_ACCOUNTS} Bluesky accounts, not {len(accounts)}")
        super().__init__(config, name)
        self.jetstream_url = jetstream_url
        self.accounts = accounts

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        keywords: str | None = None,
        languages: str | None = None,
        accounts: str | None = None,
        name: str | None = None,
    ) -> BlueskySource:
        """Options given (comma-separated) win over the ``SENTISTREAM_BLUESKY_*`` settings."""
        return cls(
            LiveConfig.from_settings(
                settings,
                keywords=settings.bluesky_keywords if keywords is None else keywords,
                languages=languages,
            ),
            jetstream_url=settings.bluesky_jetstream_url,
            accounts=comma_list(settings.bluesky_accounts if accounts is None else accounts),
            name=name,
        )

    def subscribe_url(self, position: Position) -> str:
        query: list[tuple[str, str | int]] = [("wantedCollections", POST_COLLECTION)]
        query += [("wantedDids", did) for did in self.accounts]
        if isinstance(position, int):
            query.append(("cursor", max(position - REWIND_MICROSECONDS, 1)))
        return f"{self.jetstream_url}?{urlencode(query)}"

    def describe(self) -> str:
        who = f"{len(self.accounts)} accounts" if self.accounts else "every account"
        return f"Jetstream {urlsplit(self.jetstream_url).netloc}, posts of {who}"

    def session(self, position: Position) -> Iterator[Event]:
        with open_websocket(self.subscribe_url(position)) as websocket:
            yield Connected(self.describe())
            for frame in frames(websocket):
                yield None if frame is None else parse_frame(frame)
