"""Network plumbing the sources share: a websocket read with idle ticks, and how long a server asks to wait."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime

from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from producer.live.base import IDLE_TICK, RetryAfter, parse_timestamp

logger = logging.getLogger(__name__)

WEBSOCKET_ERRORS: tuple[type[BaseException], ...] = (WebSocketException,)
# websockets' receive buffer: at most this many frames wait while Kafka is slow, then TCP pushes back.
MAX_QUEUED_FRAMES = 64
MAX_FRAME_BYTES = 4 * 1024 * 1024
DEFAULT_RETRY_AFTER = 60.0


def retry_after(headers: Mapping[str, str], default: float = DEFAULT_RETRY_AFTER) -> float:
    """Seconds a rate-limited answer asks to wait: ``Retry-After`` (seconds or an HTTP date), else
    ``X-RateLimit-Reset`` (an ISO 8601 time, as Mastodon sends, or UNIX seconds), else ``default``."""
    now = time.time()
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset") or headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            moment = parse_timestamp(reset)
            if moment is not None:
                return max(0.0, moment - now)
    return default


def open_websocket(url: str, headers: Mapping[str, str] | None = None) -> ClientConnection:
    """A websocket to ``url``; a 429 answer to the handshake becomes :class:`RetryAfter`."""
    try:
        return connect(
            url,
            additional_headers=dict(headers or {}),
            open_timeout=10,
            close_timeout=2,  # a stop waits this long at most for the server's goodbye
            max_size=MAX_FRAME_BYTES,
            max_queue=MAX_QUEUED_FRAMES,
        )
    except InvalidStatus as exc:
        if exc.response.status_code == 429:
            raise RetryAfter("rate limited (HTTP 429)", retry_after(exc.response.headers)) from None
        raise


def frames(websocket: ClientConnection) -> Iterator[str | bytes | None]:
    """Each frame received, and None after every idle second; ends by raising when the connection closes."""
    while True:
        try:
            yield websocket.recv(timeout=IDLE_TICK)
        except TimeoutError:
            yield None
