"""Facebook page posts and their comments, polled from the Graph API with a page access token.

Each poll reads the page's feed (``GET /{version}/{page-id}/feed``) since the newest post already sent, every
page of it (``paging.next``), oldest first; then the new comments (``GET /{version}/{post-id}/comments``) of the
page's ``comment_posts`` newest posts. The first start reads the newest page of the feed only. ``since`` is a
whole second and may repeat a post of that second: the ids already sent at it are kept with it, and the position
(the feed's and each followed post's) is saved in the source's state, so a restart resumes without duplicates.

Rate limits: every answer's ``X-App-Usage``, ``X-Page-Usage`` and ``X-Business-Use-Case-Usage`` (percentages of
the allowance used) stretch the poll interval from ``SLOW_DOWN_AT`` percent on, up to ``MAX_SLOWDOWN`` times at
100; at 100, or when Facebook gives a time to regain access, or answers a throttling error (codes 4, 17, 32, 613,
80001) or HTTP 429, the source waits at least ``throttled_wait`` seconds (or the time Facebook gives) before its
next request. The token travels in the ``Authorization`` header only; the ``access_token`` Facebook writes into
``paging.next`` is removed, and a next page elsewhere than the Graph API is never followed.

Posts: id ``facebook:<graph id>``, author the writer's id (``from.id``; the page's id where the token may not
see the writer), ``created_at`` the ``created_time``. Posts without a message (a photo alone) are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

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
from producer.live.net import retry_after

logger = logging.getLogger(__name__)

NETWORK = "facebook"
FIELDS = "id,message,created_time,from"
PAGE_LIMIT = 100  # the most a feed or comments page gives
FIRST_START_LIMIT = 25
MAX_PAGES = 50  # one poll reads at most this many pages: after a very long outage the oldest are left out
HTTP_TIMEOUT = 10.0
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80001})
NOT_FOUND_CODE = 100  # e.g. a followed post was deleted
SLOW_DOWN_AT = 50.0  # percent of an allowance used
MAX_SLOWDOWN = 10.0
USAGE_HEADERS = ("x-app-usage", "x-page-usage")
BUSINESS_USAGE_HEADER = "x-business-use-case-usage"


class GraphError(Exception):
    """An error answer of the Graph API (an expired token, a missing permission, a server error)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class Malformed(ValueError):
    """An answer that is not what the Graph API documents; ``body`` is its beginning."""

    def __init__(self, reason: str, body: bytes):
        super().__init__(reason)
        self.body = body[:500]


def _json_object(text: str | None) -> dict[str, object]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def usage(headers: Mapping[str, str]) -> tuple[float, float]:
    """The highest percentage of any allowance used, and the seconds Facebook says access is blocked for."""
    percentages: list[float] = []
    blocked = 0.0
    for name in USAGE_HEADERS:
        percentages += [v for v in _json_object(headers.get(name)).values() if isinstance(v, int | float)]
    for entries in _json_object(headers.get(BUSINESS_USAGE_HEADER)).values():
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict):
                continue
            percentages += [
                v for k, v in entry.items() if k != "estimated_time_to_regain_access" and isinstance(v, int | float)
            ]
            regain = entry.get("estimated_time_to_regain_access")
            if isinstance(regain, int | float):
                blocked = max(blocked, regain * 60.0)  # minutes
    return max(percentages, default=0.0), blocked


def slowdown(percent: float) -> float:
    """How many poll intervals to wait at ``percent`` of an allowance used."""
    if percent <= SLOW_DOWN_AT:
        return 1.0
    return 1.0 + (MAX_SLOWDOWN - 1.0) * min(1.0, (percent - SLOW_DOWN_AT) / (100.0 - SLOW_DOWN_AT))


@dataclass(frozen=True)
class Mark:
    """How far a listing (the feed, a post's comments) was read: the newest ``created_time`` sent (UNIX
    seconds) and the ids sent at that second."""

    since: int | None = None
    at_since: tuple[str, ...] = ()

    def is_new(self, created: int, graph_id: str) -> bool:
        return self.since is None or created > self.since or (created == self.since and graph_id not in self.at_since)

    def after(self, created: int, graph_id: str) -> Mark:
        if self.since is not None and created < self.since:
            return self
        if created == self.since:
            return Mark(created, (*self.at_since, graph_id))
        return Mark(created, (graph_id,))


@dataclass(frozen=True)
class Cursor:
    """The source's position: the feed's mark and the marks of the followed posts' comments (oldest first)."""

    feed: Mark = Mark()
    comments: tuple[tuple[str, Mark], ...] = ()

    @classmethod
    def load(cls, position: Position) -> Cursor:
        if not isinstance(position, dict):
            return cls()
        try:
            since, at_since = position["feed"]
            return cls(
                Mark(since, tuple(at_since)),
                tuple((post, Mark(s, tuple(ids))) for post, s, ids in position["comments"]),
            )
        except (KeyError, TypeError, ValueError):
            logger.warning("Facebook: unreadable saved position, starting afresh: %.200r", position)
            return cls()

    def position(self) -> dict[str, object]:
        return {
            "feed": [self.feed.since, list(self.feed.at_since)],
            "comments": [[post, mark.since, list(mark.at_since)] for post, mark in self.comments],
        }

    def with_post(self, post: str, created: int, keep: int) -> Cursor:
        """Follow ``post``'s comments (from its creation), keeping the ``keep`` newest posts followed."""
        followed = (*self.comments, (post, Mark(created - 1)))  # every comment is at least as new as its post
        return dataclasses.replace(self, comments=followed[-keep:] if keep else ())

    def with_comment_mark(self, post: str, mark: Mark | None) -> Cursor:
        """``post``'s comments read up to ``mark``; None = no longer followed."""
        marks = tuple((p, mark if p == post else m) for p, m in self.comments if p != post or mark is not None)
        return dataclasses.replace(self, comments=marks)


def parse_object(item: object, page_id: str) -> tuple[str, int, Draft | Passed] | BadFrame:
    """A feed post or a comment: its Graph id, its creation second and its event (position not yet set)."""
    if not isinstance(item, dict):
        return BadFrame("an object that is not a JSON object", repr(item)[:500])
    graph_id, created = item.get("id"), parse_timestamp(item.get("created_time"))
    if not isinstance(graph_id, str) or not graph_id or created is None:
        return BadFrame("an object without its id or created_time", repr(item)[:500])
    message = item.get("message")
    if not isinstance(message, str) or not message.strip():
        return graph_id, int(created), Passed("no_text")
    writer = item.get("from")
    author = writer.get("id") if isinstance(writer, dict) else None
    draft = Draft(
        id=network_post_id(NETWORK, graph_id),
        author=author if isinstance(author, str) and author else page_id,
        text=message,
        created_at=created,
    )
    return graph_id, int(created), draft


class FacebookPageSource(LiveSource):
    """A Facebook page's posts and their comments, polled (see the module)."""

    network = NETWORK
    network_errors = (*LiveSource.network_errors, httpx.HTTPError, GraphError)

    def __init__(
        self,
        config: LiveConfig,
        page_id: str,
        page_token: SecretStr,
        *,
        graph_url: str = "https://graph.facebook.com",
        api_version: str = "v24.0",
        poll_interval: float = 60.0,
        comment_posts: int = 10,
        throttled_wait: float = 300.0,
        name: str | None = None,
    ):
        super().__init__(config, name)
        self.page_id = page_id
        self.page_token = page_token
        self.graph_url = graph_url.rstrip("/")
        self.api_version = api_version
        self.poll_interval = poll_interval
        self.comment_posts = comment_posts
        self.throttled_wait = throttled_wait

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        keywords: str | None = None,
        languages: str | None = None,
        page_id: str | None = None,
        name: str | None = None,
    ) -> FacebookPageSource:
        """The page from ``page_id`` or the setting; the token from ``SENTISTREAM_FACEBOOK_PAGE_TOKEN`` only."""
        page_id = page_id or settings.facebook_page_id
        if not page_id or settings.facebook_page_token is None:
            raise ValueError(
                "the facebook source needs SENTISTREAM_FACEBOOK_PAGE_ID and SENTISTREAM_FACEBOOK_PAGE_TOKEN"
            )
        return cls(
            LiveConfig.from_settings(settings, keywords=keywords, languages=languages),
            page_id,
            settings.facebook_page_token,
            graph_url=settings.facebook_graph_url,
            api_version=settings.facebook_api_version,
            poll_interval=settings.facebook_poll_interval_seconds,
            comment_posts=settings.facebook_comment_posts,
            name=name,
        )

    def describe(self) -> str:
        return f"page {self.page_id} via {urlsplit(self.graph_url).netloc}"

    # --- the Graph API -----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.graph_url}/{self.api_version}",
            headers={"Authorization": f"Bearer {self.page_token.get_secret_value()}"},
            timeout=HTTP_TIMEOUT,
            trust_env=False,
        )

    def _next_page(self, url: object) -> str | None:
        """``paging.next`` without the token in it; None when there is none or it leads off the Graph API."""
        if not isinstance(url, str):
            return None
        scheme, netloc, path, query, _ = urlsplit(url)
        graph = urlsplit(self.graph_url)
        if (scheme, netloc) != (graph.scheme, graph.netloc):
            logger.warning("%s: a next page off the Graph API was not followed", self.name)
            return None
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "access_token"])
        return urlunsplit((scheme, netloc, path, query, ""))

    def _read(self, client: httpx.Client, url: str, params: Mapping[str, str | int] | None = None) -> dict[str, object]:
        response = client.get(url, params=params)
        used, blocked = usage(response.headers)
        self._slowdown = slowdown(used)
        if self._slowdown > 1:
            logger.info(
                "%s: %.0f%% of a Graph API allowance used; polling %.1f times slower", self.name, used, self._slowdown
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        error = document.get("error") if isinstance(document, dict) else None
        if response.status_code == 429:
            raise RetryAfter("rate limited (HTTP 429)", retry_after(response.headers, self.throttled_wait))
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), int) else None
            message = f"Graph API error {code}: {str(error.get('message'))[:300]}"
            if code in THROTTLING_CODES:
                raise RetryAfter(f"throttled: {message}", max(blocked, self.throttled_wait))
            raise GraphError(message, code)
        if response.status_code != 200:
            raise GraphError(f"HTTP {response.status_code} from the Graph API")
        if used >= 100 or blocked:
            raise RetryAfter(f"{used:.0f}% of a Graph API allowance used", max(blocked, self.throttled_wait))
        if not isinstance(document, dict) or not isinstance(document.get("data"), list):
            # Its beginning is logged: never the token (Facebook writes it into paging.next).
            body = response.content.replace(self.page_token.get_secret_value().encode(), b"<token>")
            raise Malformed("an answer without its data list", body)
        return document

    def _listing(self, client: httpx.Client, path: str, params: dict[str, str | int], all_pages: bool) -> list[object]:
        """The objects of a listing, following ``paging.next`` (at most MAX_PAGES pages), in Facebook's order."""
        document = self._read(client, path, params)
        items = list(document["data"])
        for _ in range(MAX_PAGES - 1):
            paging = document.get("paging")
            next_url = self._next_page(paging.get("next")) if isinstance(paging, dict) and all_pages else None
            if next_url is None or not document["data"]:
                return items
            document = self._read(client, next_url)
            items += document["data"]
        logger.warning("%s: %s has more than %d pages; the oldest are left out", self.name, path, MAX_PAGES)
        return items

    # --- the session -------------------------------------------------------------------------------

    def session(self, position: Position) -> Iterator[Event]:
        self._cursor = Cursor.load(position)
        self._slowdown = 1.0
        with self._client() as client:
            connected = False
            while True:
                try:
                    feed = self._feed(client)
                    if not connected:
                        connected = True
                        yield Connected(self.describe())
                    yield from self._new_posts(feed)
                    for post, mark in self._cursor.comments:
                        yield from self._new_comments(client, post, mark)
                except Malformed as exc:  # this poll ends here; the next one asks again
                    yield BadFrame(str(exc), exc.body)
                yield from self.idle(self.poll_interval * self._slowdown)

    def _feed(self, client: httpx.Client) -> list[object]:
        since = self._cursor.feed.since
        if since is None:  # the first start: the newest posts only
            return self._listing(
                client, f"/{self.page_id}/feed", {"fields": FIELDS, "limit": FIRST_START_LIMIT}, all_pages=False
            )
        params: dict[str, str | int] = {"fields": FIELDS, "limit": PAGE_LIMIT, "since": since}
        return self._listing(client, f"/{self.page_id}/feed", params, all_pages=True)

    def _new_posts(self, items: list[object]) -> Iterator[Event]:
        for parsed in self._oldest_first(items):
            if isinstance(parsed, BadFrame):
                yield parsed
                continue
            graph_id, created, event = parsed
            if not self._cursor.feed.is_new(created, graph_id):
                continue
            cursor = dataclasses.replace(self._cursor, feed=self._cursor.feed.after(created, graph_id))
            self._cursor = cursor.with_post(graph_id, created, self.comment_posts)
            yield dataclasses.replace(event, position=self._cursor.position())

    def _new_comments(self, client: httpx.Client, post: str, mark: Mark) -> Iterator[Event]:
        params: dict[str, str | int] = {
            "fields": FIELDS,
            "filter": "stream",  # replies to comments too
            "order": "chronological",
            "limit": PAGE_LIMIT,
            "since": mark.since or 0,
        }
        try:
            items = self._listing(client, f"/{post}/comments", params, all_pages=True)
        except GraphError as exc:
            if exc.code != NOT_FOUND_CODE:
                raise
            self._cursor = self._cursor.with_comment_mark(post, None)  # deleted: no comments to come
            yield Passed(position=self._cursor.position())
            return
        for parsed in self._oldest_first(items):
            if isinstance(parsed, BadFrame):
                yield parsed
                continue
            graph_id, created, event = parsed
            if not mark.is_new(created, graph_id):
                continue
            mark = mark.after(created, graph_id)
            self._cursor = self._cursor.with_comment_mark(post, mark)
            yield dataclasses.replace(event, position=self._cursor.position())

    def _oldest_first(self, items: list[object]) -> list[tuple[str, int, Draft | Passed] | BadFrame]:
        parsed = [parse_object(item, self.page_id) for item in items]
        readable = [item for item in parsed if not isinstance(item, BadFrame)]
        return [item for item in parsed if isinstance(item, BadFrame)] + sorted(readable, key=lambda item: item[1])
