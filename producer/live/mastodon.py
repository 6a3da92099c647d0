"""Mastodon posts: an instance's streaming API, with its REST timeline to catch up and as the fallback.

One timeline is followed: the public one (the instance's federated timeline), the local one, a hashtag's or a
list's (a list needs an access token; public timelines need one where the instance requires it). A session
opens the streaming websocket first, then reads the REST timeline from the last post seen (``min_id`` pages),
then the stream: nothing is missed in between, and the overlap is recognised by id. When the streaming server
refuses (some instances have none, or want a token), the session polls the REST timeline every
``poll_interval`` seconds instead, and tries streaming again after ``streaming_retry`` seconds.

Posts: id ``mastodon:<instance>/<status id>``, author ``user@instance``, the HTML content as plain text,
``language`` as the language; boosts are skipped (the boosted post is counted where it was written).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr
from websockets.sync.client import ClientConnection

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
    RetryAfter,
    network_post_id,
    parse_timestamp,
)
from producer.live.html_text import html_to_text
from producer.live.net import WEBSOCKET_ERRORS, frames, open_websocket, retry_after

logger = logging.getLogger(__name__)

Timeline = Literal["public", "local", "hashtag", "list"]
PAGE_SIZE = 40  # the most Mastodon's timelines give per page
MAX_CATCH_UP_PAGES = 25  # 1,000 posts: after a longer outage the oldest missed ones are left out
HTTP_TIMEOUT = 10.0


def status_id_order(status_id: str) -> tuple[int, str]:
    """Mastodon's ids are numbers written as strings: a longer one is newer."""
    return len(status_id), status_id


def newer(position: Position, status_id: str) -> str:
    if isinstance(position, str) and status_id_order(position) >= status_id_order(status_id):
        return position
    return status_id


def parse_status(status: object, instance: str) -> Event:
    """A Status entity (REST, or a streaming ``update``'s payload) as an event of the source."""
    if not isinstance(status, dict):
        return BadFrame("a status that is not a JSON object", repr(status))
    status_id, account, content = status.get("id"), status.get("account"), status.get("content")
    acct = account.get("acct") if isinstance(account, dict) else None
    if not isinstance(status_id, str) or not status_id or not isinstance(acct, str) or not acct:
        return BadFrame("a status without its id or account", repr(status)[:500])
    if status.get("reblog"):
        return Passed("boost", position=status_id)
    if not isinstance(content, str):
        return BadFrame("a status whose content is not a string", repr(status)[:500])
    language = status.get("language")
    return Draft(
        id=network_post_id("mastodon", f"{instance}/{status_id}"),
        # A local account's acct has no domain: the author names the instance, so that it means one account.
        author=acct if "@" in acct else f"{acct}@{instance}",
        text=html_to_text(content),
        created_at=parse_timestamp(status.get("created_at")) or time.time(),
        languages=(language,) if isinstance(language, str) else (),
        position=status_id,
    )


class StreamError(ConnectionError):
    """The streaming server said something went wrong (e.g. a missing or invalid access token)."""


def parse_message(frame: str | bytes, instance: str) -> Event:
    """One streaming websocket message, ``{"stream": [...], "event": ..., "payload": "<JSON text>"}``."""
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return BadFrame("not JSON", frame)
    if not isinstance(message, dict):
        return BadFrame("not a JSON object", frame)
    if "error" in message:
        raise StreamError(f"the streaming server answered: {str(message['error'])[:300]}")
    if message.get("event") != "update":  # deletions, edits, notifications...
        return Passed()
    payload = message.get("payload")
    try:
        status = json.loads(payload) if isinstance(payload, str) else payload
    except ValueError:
        return BadFrame("an update whose payload is not JSON", frame)
    return parse_status(status, instance)


class MastodonSource(LiveSource):
    """An instance's timeline (public, local, a hashtag's or a list's), streamed, with the REST timeline behind."""

    network = "mastodon"
    network_errors = (*LiveSource.network_errors, *WEBSOCKET_ERRORS, httpx.HTTPError)

    def __init__(
        self,
        config: LiveConfig,
        instance_url: str,
        timeline: Timeline = "public",
        *,
        hashtag: str | None = None,
        list_id: str | None = None,
        access_token: SecretStr | None = None,
        streaming_url: str | None = None,
        poll_interval: float = 10.0,
        streaming_retry: float = 300.0,
        name: str | None = None,
    ):
        if timeline == "hashtag" and not hashtag:
            raise ValueError("the hashtag timeline needs a hashtag")
        if timeline == "list" and not (list_id and access_token):
            raise ValueError("the list timeline needs a list id and an access token")
        super().__init__(config, name)
        self.instance_url = instance_url.rstrip("/")
        self.instance = urlsplit(self.instance_url).netloc
        self.timeline = timeline
        self.hashtag = hashtag.lstrip("#") if hashtag else None
        self.list_id = list_id
        self.access_token = access_token
        self.streaming_url = streaming_url
        self.poll_interval = poll_interval
        self.streaming_retry = streaming_retry

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        keywords: str | None = None,
        languages: str | None = None,
        timeline: Timeline | None = None,
        hashtag: str | None = None,
        list_id: str | None = None,
        name: str | None = None,
    ) -> MastodonSource:
        """Options given win over the ``SENTISTREAM_MASTODON_*`` settings; the token is the setting's only."""
        return cls(
            LiveConfig.from_settings(
                settings,
                keywords=settings.mastodon_keywords if keywords is None else keywords,
                languages=languages,
            ),
            settings.mastodon_instance_url,
            timeline or settings.mastodon_timeline,
            hashtag=hashtag or settings.mastodon_hashtag,
            list_id=list_id or settings.mastodon_list_id,
            access_token=settings.mastodon_access_token,
            streaming_url=settings.mastodon_streaming_url,
            name=name,
        )

    def describe(self) -> str:
        followed = {"hashtag": f"#{self.hashtag}", "list": f"list {self.list_id}"}.get(self.timeline, self.timeline)
        return f"{self.instance}, {followed} timeline"

    # --- the REST API ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = self.access_token.get_secret_value() if self.access_token else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def timeline_request(self) -> tuple[str, dict[str, str]]:
        """The REST path and parameters of the timeline."""
        if self.timeline == "hashtag":
            return f"/api/v1/timelines/tag/{quote(self.hashtag or '', safe='')}", {}
        if self.timeline == "list":
            return f"/api/v1/timelines/list/{quote(self.list_id or '', safe='')}", {}
        return "/api/v1/timelines/public", {"local": "true"} if self.timeline == "local" else {}

    def _get(self, client: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
        response = client.get(path, params=params)
        if response.status_code == 429:
            raise RetryAfter(f"{self.instance} rate limit reached (HTTP 429)", retry_after(response.headers))
        response.raise_for_status()
        return response

    def _page(self, client: httpx.Client, since: Position) -> tuple[list[object], float]:
        """The statuses just after ``since`` (the newest if None), oldest first; and how long the rate limit
        asks to wait before the next request (0 while requests remain)."""
        path, params = self.timeline_request()
        params = {**params, "limit": str(PAGE_SIZE)}
        if isinstance(since, str):
            params["min_id"] = since  # the page immediately newer than it
        response = self._get(client, path, params)
        statuses = response.json()
        if not isinstance(statuses, list):
            raise ValueError(f"{path} answered with {type(statuses).__name__}, not a list of statuses")
        exhausted = response.headers.get("x-ratelimit-remaining") == "0"
        return statuses[::-1], retry_after(response.headers, default=0.0) if exhausted else 0.0

    def _catch_up(self, client: httpx.Client, since: Position) -> Iterator[Event]:
        """Every status after ``since`` from the REST timeline, oldest first, page by page (without ``since``,
        the newest page only)."""
        first_start = since is None
        for _ in range(MAX_CATCH_UP_PAGES):
            statuses, wait = self._page(client, since)
            for status in statuses:
                event = parse_status(status, self.instance)
                if isinstance(event, Draft | Passed) and isinstance(event.position, str):
                    since = newer(since, event.position)
                yield event
            if wait:
                logger.info("%s: rate limit reached; next request in %.0f s", self.name, wait)
                yield from self.idle(wait)
            if len(statuses) < PAGE_SIZE or first_start:
                return
        logger.warning("%s: caught up %d pages; older missed posts are left out", self.name, MAX_CATCH_UP_PAGES)

    # --- the streaming API -----------------------------------------------------------------------

    def _streaming_base(self, client: httpx.Client) -> str:
        """The streaming server: the setting, else the one the instance announces, else the instance itself."""
        if self.streaming_url:
            return self.streaming_url.rstrip("/")
        try:
            announced = self._get(client, "/api/v2/instance", {}).json()["configuration"]["urls"]["streaming"]
            if isinstance(announced, str) and announced:
                return announced.rstrip("/")
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError):
            pass  # an older or unusual instance: try the instance's own address
        scheme, netloc, path, _, _ = urlsplit(self.instance_url)
        return urlunsplit(("wss" if scheme == "https" else "ws", netloc, path, "", ""))

    def stream_url(self, base: str) -> str:
        stream = {"public": "public", "local": "public:local", "hashtag": "hashtag", "list": "list"}[self.timeline]
        query = {"stream": stream}
        if self.timeline == "hashtag":
            query["tag"] = self.hashtag or ""
        elif self.timeline == "list":
            query["list"] = self.list_id or ""
        return f"{base}/api/v1/streaming?{urlencode(query)}"

    # --- the session -----------------------------------------------------------------------------

    def session(self, position: Position) -> Iterator[Event]:
        newest = position
        with httpx.Client(
            base_url=self.instance_url, headers=self._headers(), timeout=HTTP_TIMEOUT, follow_redirects=True
        ) as client:
            while self.running:
                url = self.stream_url(self._streaming_base(client))
                try:
                    websocket = open_websocket(url, self._headers())
                except (*WEBSOCKET_ERRORS, OSError) as exc:
                    newest = yield from self._poll(client, newest, f"{type(exc).__name__}: {exc}")
                    continue
                with websocket:
                    newest = yield from self._stream(client, websocket, newest)

    def _stream(self, client: httpx.Client, websocket: ClientConnection, newest: Position) -> Iterator[Event]:
        newest = yield from self._tracked(self._catch_up(client, newest), newest)
        yield Connected(f"{self.describe()}, streaming")
        messages = (None if frame is None else parse_message(frame, self.instance) for frame in frames(websocket))
        return (yield from self._tracked(messages, newest))

    def _poll(self, client: httpx.Client, newest: Position, why: str) -> Iterator[Event]:
        """The REST timeline every ``poll_interval`` seconds, for ``streaming_retry`` seconds."""
        logger.warning("%s: streaming refused (%s); polling the REST timeline instead", self.name, why)
        until = time.monotonic() + self.streaming_retry
        connected = False
        while self.running and time.monotonic() < until:
            newest = yield from self._tracked(self._catch_up(client, newest), newest)
            if not connected:
                yield Connected(f"{self.describe()}, polling REST every {self.poll_interval:g} s (streaming: {why})")
                connected = True
            yield from self.idle(self.poll_interval)
        return newest

    @staticmethod
    def _tracked(events: Iterator[Event], newest: Position) -> Iterator[Event]:
        """``events`` with each one's position raised to the newest status id seen: streaming order is not id
        order (federated posts arrive late), and the REST timeline resumes after the newest."""
        for event in events:
            if isinstance(event, Draft | Passed) and isinstance(event.position, str):
                newest = newer(newest, event.position)
                event = dataclasses.replace(event, position=newest)
            yield event
        return newest
