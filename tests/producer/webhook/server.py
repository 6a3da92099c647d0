"""The webhook served for real (uvicorn on an ephemeral port, in a thread of the test) and a plain HTTP client."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

import uvicorn

from common.settings import Settings
from producer.webhook.app import create_app
from producer.webhook.writer import AcknowledgedWriter
from tests.waiting import wait_for


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Message  # case-insensitive

    def json(self) -> object:
        return json.loads(self.body)


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), error.headers)


def post_json(url: str, document: object, headers: dict[str, str] | None = None) -> Answer:
    return call(url, "POST", json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})})


def healthy(url: str) -> bool:
    try:
        return call(f"{url}/health").status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serving(settings: Settings, writer: AcknowledgedWriter | None = None) -> Iterator[str]:
    """The webhook app served on 127.0.0.1 (a port bound here, so it is known before the server starts); yields
    its base URL once /health answers, and stops it (graceful: requests in flight are answered) on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    config = uvicorn.Config(create_app(settings, writer), log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="webhook-server", daemon=True)
    thread.start()
    try:
        wait_for(lambda: healthy(url) or not thread.is_alive(), 30, "the webhook to answer /health")
        assert thread.is_alive(), "the webhook server exited at start"
        yield url
    finally:
        server.should_exit = True
        thread.join(60)
        listener.close()
