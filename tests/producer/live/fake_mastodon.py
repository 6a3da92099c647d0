"""A local Mastodon instance: the REST timelines (``min_id`` paging, ``Link`` and ``X-RateLimit-*`` headers,
429 answers), ``/api/v2/instance`` announcing its streaming server, and that server's websocket
(``/api/v1/streaming?stream=...``, ``update`` events whose payload is the Status as JSON text).

Statuses are kept in id order; REST answers newest first, as Mastodon does.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from tests.waiting import wait_for

INSTANCE = "127.0.0.1"


def status(
    status_id: int,
    text: str,
    acct: str = "alice",
    language: str | None = "en",
    tags: tuple[str, ...] = (),
    reblog: dict[str, object] | None = None,
) -> dict[str, object]:
    """A Status entity as Mastodon renders it (the fields a client reads, and a few more)."""
    return {
        "id": str(status_id),
        "created_at": datetime.fromtimestamp(1_700_000_000 + status_id, UTC).isoformat().replace("+00:00", ".000Z"),
        "in_reply_to_id": None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": language,
        "uri": f"https://{INSTANCE}/users/{acct}/statuses/{status_id}",
        "url": f"https://{INSTANCE}/@{acct}/{status_id}",
        "content": f"<p>{text}</p>",
        "account": {"id": "1", "username": acct.split("@")[0], "acct": acct, "display_name": acct},
        "reblog": reblog,
        "tags": [{"name": tag, "url": f"https://{INSTANCE}/tags/{tag}"} for tag in tags],
        "media_attachments": [],
        "mentions": [],
        "emojis": [],
    }


@dataclass
class Call:
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class FakeMastodon:
    statuses: list[dict[str, object]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    streams: list[Call] = field(default_factory=list)  # streaming handshakes
    streaming_url: str = ""
    refuse_streaming: int = 0  # refuse this many streaming handshakes (HTTP 401), then accept
    rate_limited: int = 0  # answer this many REST requests 429, then serve
    remaining: int = 300  # X-RateLimit-Remaining of the next answers
    lock: threading.Lock = field(default_factory=threading.Lock)
    _connections: list[tuple[ServerConnection, dict[str, list[str]]]] = field(default_factory=list)

    def publish(self, *statuses: dict[str, object] | str, stream: bool = True) -> None:
        """New statuses: on the timelines, and (``stream``) to every matching stream; a ``str`` is a raw frame
        sent to the streams only (malformed input)."""
        with self.lock:
            self.statuses += [s for s in statuses if isinstance(s, dict)]
            connections = list(self._connections)
        if not stream:
            return
        for connection, query in connections:
            for item in statuses:
                if isinstance(item, dict) and not self._matches(item, query.get("tag", [None])[0]):
                    continue
                frame = item if isinstance(item, str) else self.update_message(item, query["stream"][0])
                with contextlib.suppress(ConnectionClosed):
                    connection.send(frame)

    @staticmethod
    def update_message(item: dict[str, object], stream: str) -> str:
        return json.dumps({"stream": [stream], "event": "update", "payload": json.dumps(item)})

    def disconnect_all(self) -> None:
        with self.lock:
            connections = list(self._connections)
        for connection, _ in connections:
            connection.close_socket()

    def wait_for_streams(self, count: int, timeout: float = 30) -> Call:
        wait_for(lambda: len(self.streams) >= count and len(self._connections) >= 1, timeout, f"{count} streams")
        return self.streams[count - 1]

    @staticmethod
    def _matches(item: dict[str, object], tag: str | None) -> bool:
        return tag is None or any(t["name"] == tag for t in item["tags"])  # type: ignore[attr-defined, index]

    # --- REST ------------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], authorization: str | None) -> tuple[int, dict, object]:
        with self.lock:
            self.calls.append(Call(path, query, authorization))
            if path == "/api/v2/instance":
                return 200, {}, {"domain": INSTANCE, "configuration": {"urls": {"streaming": self.streaming_url}}}
            headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Reset": "2000-01-01T00:00:00.000Z"}
            if self.rate_limited:
                self.rate_limited -= 1
                reset = datetime.now(UTC).timestamp() + 1
                reset_at = datetime.fromtimestamp(reset, UTC).isoformat().replace("+00:00", "Z")
                return (
                    429,
                    {**headers, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset_at},
                    {"error": "Too many requests"},
                )
            if path.startswith("/api/v1/timelines/list/") and not authorization:
                return 401, headers, {"error": "The access token is invalid"}
            tag = path.removeprefix("/api/v1/timelines/tag/") if path.startswith("/api/v1/timelines/tag/") else None
            if not path.startswith("/api/v1/timelines/"):
                return 404, headers, {"error": "Record not found"}
            selected = [s for s in self.statuses if self._matches(s, tag)]
            limit = min(int(query.get("limit", ["20"])[0]), 40)
            if "min_id" in query:  # the page immediately newer than min_id
                floor = int(query["min_id"][0])
                page = [s for s in selected if int(s["id"]) > floor][:limit]  # type: ignore[call-overload]
            else:
                page = selected[-limit:]
            page = page[::-1]  # newest first
            if page:
                base = f"http://{INSTANCE}{path}"
                headers["Link"] = (
                    f'<{base}?max_id={page[-1]["id"]}>; rel="next", <{base}?min_id={page[0]["id"]}>; rel="prev"'
                )
            headers["X-RateLimit-Remaining"] = str(self.remaining)
            return 200, headers, page

    # --- streaming -------------------------------------------------------------------------------

    def _process_request(self, _connection: ServerConnection, request: Request) -> Response | None:
        split = urlsplit(request.path)
        with self.lock:
            self.streams.append(Call(split.path, parse_qs(split.query), request.headers.get("Authorization")))
            if split.path != "/api/v1/streaming":
                return Response(HTTPStatus.NOT_FOUND, "Not Found", Headers(), b"")
            if self.refuse_streaming:
                self.refuse_streaming -= 1
                return Response(HTTPStatus.UNAUTHORIZED, "Unauthorized", Headers(), b'{"error":"Missing access token"}')
        return None

    def _handler(self, connection: ServerConnection) -> None:
        query = parse_qs(urlsplit(connection.request.path).query)
        with self.lock:
            self._connections.append((connection, query))
        try:
            with contextlib.suppress(ConnectionClosed):
                for _ in connection:  # clients send nothing here; this waits for the connection to end
                    pass
        finally:
            with self.lock:
                self._connections.remove((connection, query))


class _RestHandler(BaseHTTPRequestHandler):
    fake: FakeMastodon

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        code, headers, body = self.fake.answer(split.path, parse_qs(split.query), self.headers.get("Authorization"))
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


class serving:
    """``with serving() as (mastodon, instance_url):`` a FakeMastodon: REST and streaming on ephemeral ports."""

    def __enter__(self) -> tuple[FakeMastodon, str]:
        self.fake = FakeMastodon()
        handler = type("Handler", (_RestHandler,), {"fake": self.fake})
        self.rest = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.rest.daemon_threads = True
        self.streaming = serve(
            self.fake._handler, "127.0.0.1", 0, process_request=self.fake._process_request, compression=None
        )
        self.fake.streaming_url = f"ws://127.0.0.1:{self.streaming.socket.getsockname()[1]}"
        self.threads = [
            threading.Thread(target=server.serve_forever, name="fake-mastodon", daemon=True)
            for server in (self.rest, self.streaming)
        ]
        for thread in self.threads:
            thread.start()
        return self.fake, f"http://127.0.0.1:{self.rest.server_address[1]}"

    def __exit__(self, *_exc: object) -> None:
        self.fake.disconnect_all()
        self.rest.shutdown()
        self.streaming.shutdown()
        for thread in self.threads:
            thread.join(10)
