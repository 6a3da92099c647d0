"""A local Graph API for a Facebook page: ``/{version}/{page-id}/feed`` (newest first) and
``/{version}/{post-id}/comments`` (oldest first), ``data`` + ``paging`` answers whose ``paging.next`` carries the
access token as Facebook's do, ``since`` inclusive of its second, the token required in the ``Authorization``
header, usage headers on every answer, and scripted trouble: throttling errors, 429, malformed answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.waiting import wait_for

VERSION = "v24.0"
PAGE_ID = "1000"
TOKEN = "page-token-s3cret"
EPOCH = 1_700_000_000


def created(second: int) -> str:
    """``created_time`` as the Graph API writes it: ``2023-11-14T22:13:20+0000``."""
    return datetime.fromtimestamp(EPOCH + second, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def graph_object(graph_id: str, second: int, message: str | None, writer: str | None = "42") -> dict[str, object]:
    item: dict[str, object] = {"id": graph_id, "created_time": created(second)}
    if message is not None:
        item["message"] = message
    if writer is not None:
        item["from"] = {"id": writer, "name": f"User {writer}"}
    return item


@dataclass
class Call:
    path: str
    query: dict[str, str]
    authorization: str | None
    at: float  # time.monotonic() when it arrived
    troubled: bool = False  # answered with a scripted trouble


@dataclass
class Trouble:
    """One scripted answer: status, headers and the raw body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(code: int, message: str, status: int = 400) -> Trouble:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
    return Trouble(status, json.dumps({"error": error}).encode())


@dataclass
class FakeGraph:
    base_url: str = ""
    posts: list[dict[str, object]] = field(default_factory=list)
    comments: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    troubles: list[Trouble] = field(default_factory=list)  # served first, one per request
    usage_percent: int = 5  # X-App-Usage call_count of normal answers
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish_posts(self, *items: dict[str, object]) -> None:
        """New posts on the page's feed, all at once."""
        with self.lock:
            self.posts += items

    def publish_comment(self, post_id: str, item: dict[str, object]) -> None:
        with self.lock:
            self.comments.setdefault(post_id, []).append(item)

    def trouble(self, *troubles: Trouble) -> None:
        with self.lock:
            self.troubles += troubles

    def gap_after_trouble(self) -> float:
        """Seconds between the last troubled answer and the request after it (waits for that request)."""

        def gap() -> float | None:
            with self.lock:
                last = max((n for n, call in enumerate(self.calls) if call.troubled), default=None)
                if last is None or last + 1 == len(self.calls):
                    return None
                return self.calls[last + 1].at - self.calls[last].at

        return wait_for(gap, 30, "the request after the trouble")

    def calls_to(self, suffix: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.path.endswith(suffix)]

    def answer(self, path: str, query: dict[str, str], authorization: str | None) -> Trouble:
        with self.lock:
            self.calls.append(Call(path, query, authorization, time.monotonic(), troubled=bool(self.troubles)))
            if self.troubles:
                return self.troubles.pop(0)
            usage = {"X-App-Usage": json.dumps({"call_count": self.usage_percent, "total_cputime": 1, "total_time": 1})}
            if authorization != f"Bearer {TOKEN}" or "access_token" in query:
                return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
            parts = path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != VERSION:
                return graph_error(100, "Unknown path components", 400)
            _, node, edge = parts
            if edge == "feed" and node == PAGE_ID:
                items = sorted(self.posts, key=lambda item: str(item["created_time"]), reverse=True)
            elif edge == "comments" and node not in self.deleted:
                items = sorted(self.comments.get(node, []), key=lambda item: str(item["created_time"]))
            else:
                return graph_error(100, f"Unsupported get request. Object with ID '{node}' does not exist")
            if "since" in query:  # inclusive of its second, as far as a client can tell
                since = int(query["since"])
                items = [item for item in items if _second(item) >= since]
            limit, offset = int(query.get("limit", "25")), int(query.get("offset", "0"))
            page = items[offset : offset + limit]
            document: dict[str, object] = {"data": page}
            if offset + limit < len(items):
                following = {**query, "offset": str(offset + limit), "access_token": TOKEN}
                document["paging"] = {
                    "cursors": {"before": "QVFIUm", "after": "QVFIUn"},
                    "next": f"{self.base_url}{path}?{urlencode(following)}",
                }
            return Trouble(200, json.dumps(document).encode(), usage)


def _second(item: dict[str, object]) -> int:
    moment = datetime.strptime(str(item["created_time"]), "%Y-%m-%dT%H:%M:%S%z")
    return int(moment.timestamp())


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGraph

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        answer = self.fake.answer(split.path, query, self.headers.get("Authorization"))
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def serving() -> Iterator[FakeGraph]:
    """A FakeGraph on an ephemeral port (its ``base_url``), stopped on exit."""
    fake = FakeGraph()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": fake}))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-graph", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
