"""A local Jetstream: the subscribe websocket with its query parameters, frames shaped like the real ones.

It keeps every event published (the replay window): a subscriber with a ``cursor`` first gets the events at or
after it, then the live ones; one without gets only what is published after it connected, as the real service.
``wantedCollections`` and ``wantedDids`` filter commits; identity and account events go to everyone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.sync.server import ServerConnection, serve

from tests.waiting import wait_for

POST = "app.bsky.feed.post"


def did(n: int) -> str:
    return f"did:plc:{n:024d}"


def post_event(
    author: str,
    rkey: str,
    text: str,
    time_us: int,
    langs: list[str] | None = None,
    created_at: str = "2024-09-09T19:46:02.102Z",
    operation: str = "create",
    collection: str = POST,
) -> dict[str, object]:
    """A commit event as Jetstream sends it."""
    record: dict[str, object] = {"$type": collection, "createdAt": created_at, "text": text}
    if langs is not None:
        record["langs"] = langs
    commit: dict[str, object] = {"rev": f"rev{time_us}", "operation": operation, "collection": collection, "rkey": rkey}
    if operation != "delete":
        commit |= {"record": record, "cid": f"bafyrei{rkey}"}
    return {"did": author, "time_us": time_us, "kind": "commit", "commit": commit}


def identity_event(author: str, time_us: int) -> dict[str, object]:
    return {
        "did": author,
        "time_us": time_us,
        "kind": "identity",
        "identity": {"did": author, "handle": "someone.bsky.social", "seq": 1, "time": "2024-09-05T06:11:04.870Z"},
    }


@dataclass
class Subscription:
    """One connection: what it asked for."""

    collections: list[str]
    dids: list[str]
    cursor: int | None


@dataclass
class _Event:
    time_us: int | None
    frame: str
    author: str | None = None
    collection: str | None = None


@dataclass
class FakeJetstream:
    events: list[_Event] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    refuse: list[Response] = field(default_factory=list)  # answers to the next handshakes instead of accepting
    drop_after: int | None = None  # close the next connection after sending this many frames
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _connections: list[ServerConnection] = field(default_factory=list)

    def publish(self, *events: dict[str, object] | str) -> None:
        """Events (dicts, or raw frames for malformed input) to every subscriber now and to later replays."""
        with self._changed:
            for event in events:
                if isinstance(event, str):
                    self.events.append(_Event(None, event))
                else:
                    commit = event.get("commit")
                    self.events.append(
                        _Event(
                            event.get("time_us"),  # type: ignore[arg-type]
                            json.dumps(event),
                            event.get("did"),  # type: ignore[arg-type]
                            commit.get("collection") if isinstance(commit, dict) else None,
                        )
                    )
            self._changed.notify_all()

    def refuse_next(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        """Answer the next handshake with ``status`` instead of accepting it."""
        self.refuse.append(Response(status, status.phrase, Headers(headers or {}), status.phrase.encode()))

    def disconnect_all(self) -> None:
        """Drop every connection at once, as a restarting server or a network fault does."""
        for connection in list(self._connections):
            connection.close_socket()

    def wait_for_subscriptions(self, count: int, timeout: float = 30) -> Subscription:
        wait_for(lambda: len(self.subscriptions) >= count, timeout, f"{count} subscriptions")
        return self.subscriptions[count - 1]

    # --- the server side ---------------------------------------------------------------------

    def _process_request(self, _connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != "/subscribe":
            return Response(HTTPStatus.NOT_FOUND, "Not Found", Headers(), b"not found")
        return self.refuse.pop(0) if self.refuse else None

    def _wanted(self, event: _Event, subscription: Subscription) -> bool:
        if event.collection is None:  # identity, account, and malformed frames
            return True
        return event.collection in subscription.collections and (
            not subscription.dids or event.author in subscription.dids
        )

    def _handler(self, connection: ServerConnection) -> None:
        query = parse_qs(urlsplit(connection.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        subscription = Subscription(query.get("wantedCollections", []), query.get("wantedDids", []), cursor)
        with self._changed:
            live_from = len(self.events)
            self.subscriptions.append(subscription)
            self._connections.append(connection)
            drop_after, self.drop_after = self.drop_after, None
        sent = 0
        try:
            # Without a cursor, live events only; with one, first the replay from it (no malformed frames).
            for at, event in self._follow(connection, live_from if cursor is None else 0):
                if at < live_from and (event.time_us is None or event.time_us < cursor):  # type: ignore[operator]
                    continue
                if not self._wanted(event, subscription):
                    continue
                if drop_after is not None and sent >= drop_after:
                    connection.close_socket()
                    return
                connection.send(event.frame)
                sent += 1
        except ConnectionClosed:
            pass
        finally:
            self._connections.remove(connection)

    def _follow(self, connection: ServerConnection, start: int) -> Iterator[tuple[int, _Event]]:
        at = start
        while connection.state is not State.CLOSED:
            with self._changed:
                self._changed.wait_for(lambda at=at: len(self.events) > at, timeout=0.5)
                fresh = self.events[at:]
            for event in fresh:
                yield at, event
                at += 1


class serving:
    """``with serving() as (jetstream, url):`` a FakeJetstream on an ephemeral port of 127.0.0.1."""

    def __enter__(self) -> tuple[FakeJetstream, str]:
        self.fake = FakeJetstream()
        self.server = serve(
            self.fake._handler, "127.0.0.1", 0, process_request=self.fake._process_request, compression=None
        )
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-jetstream", daemon=True)
        self.thread.start()
        port = self.server.socket.getsockname()[1]
        return self.fake, f"ws://127.0.0.1:{port}/subscribe"

    def __exit__(self, *_exc: object) -> None:
        self.fake.disconnect_all()
        self.server.shutdown()
        self.thread.join(10)


def now_us() -> int:
    return int(time.time() * 1e6)
