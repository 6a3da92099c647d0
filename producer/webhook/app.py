"""The webhook's HTTP routes (Starlette): ``POST /posts``, Facebook's ``GET``/``POST /facebook``, ``GET /health``.

Every post is written to the raw topic (key = author) before the answer: 202/200 means Kafka acknowledged it
(acks=all). Answers: 400 invalid input (with each post's reason), 401 a missing or wrong bearer token, 403 a bad
Facebook signature or verify token, 404 the Facebook route when not configured, 413 a body over
``WEBHOOK_MAX_BODY_BYTES`` or more than ``WEBHOOK_MAX_POSTS`` posts, 503 Kafka did not acknowledge in time (retry:
posts keep their ids, and an id written recently is not written twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from common.contract import Post, SourceState
from common.settings import Settings
from producer.webhook import facebook
from producer.webhook.intake import Refused, parse_posts, read_json
from producer.webhook.status import WebhookStatus, publish_status
from producer.webhook.writer import AcknowledgedWriter, KafkaRefused

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def create_app(settings: Settings, writer: AcknowledgedWriter | None = None) -> Starlette:
    writer = writer or AcknowledgedWriter(settings)
    status = WebhookStatus(f"HTTP posts to {settings.topic_posts}", settings.status_interval_seconds)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        writer.start()
        publisher = asyncio.create_task(publish_status(settings, status))
        status.state = SourceState.CONNECTED
        try:
            yield
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            writer.close()

    async def read_body(request: Request) -> bytes:
        limit = settings.webhook_max_body_bytes
        too_large = Refused(413, "body_too_large", f"the body is over {limit} bytes")
        if int(request.headers.get("content-length") or 0) > limit:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():  # counted as it comes: a chunked body has no length up front
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    async def write(posts: list[Post]) -> None:
        try:
            remembered = await writer.write(posts)
        except KafkaRefused as exc:
            status.fail(str(exc))
            raise
        status.wrote(len(posts) - remembered, remembered)

    async def receive_posts(request: Request) -> Response:
        token = settings.webhook_token
        if token is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {token.get_secret_value()}".encode()
        ):
            status.refuse("unauthorized")
            return JSONResponse(
                {"error": "unauthorized", "detail": "a valid `Authorization: Bearer <token>` is required"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        posts = parse_posts(
            await read_body(request), max_posts=settings.webhook_max_posts, max_text_chars=settings.max_text_chars
        )
        await write(posts)
        return JSONResponse({"accepted": [post.id for post in posts]}, 202)

    async def verify_facebook(request: Request) -> Response:
        if settings.facebook_verify_token is None:
            return JSONResponse(
                {"error": "not_configured", "detail": "SENTISTREAM_FACEBOOK_VERIFY_TOKEN is unset"}, 404
            )
        echo = facebook.challenge(request.query_params, settings.facebook_verify_token)
        if echo is None:
            status.refuse("forbidden")
            return JSONResponse({"error": "forbidden", "detail": "wrong hub.mode or hub.verify_token"}, 403)
        return PlainTextResponse(echo)

    async def receive_facebook(request: Request) -> Response:
        if settings.facebook_app_secret is None:
            return JSONResponse({"error": "not_configured", "detail": "SENTISTREAM_FACEBOOK_APP_SECRET is unset"}, 404)
        body = await read_body(request)
        if not facebook.signature_valid(body, request.headers.get("x-hub-signature-256"), settings.facebook_app_secret):
            status.refuse("forbidden")
            return JSONResponse({"error": "forbidden", "detail": "missing or wrong X-Hub-Signature-256"}, 403)
        # Partial by design: Facebook retries a refused delivery for hours, so a post no retry can fix is skipped.
        posts, skipped = facebook.feed_posts(read_json(body), settings.max_text_chars)
        await write(posts)
        return JSONResponse({"accepted": [post.id for post in posts], "skipped": skipped})

    async def health(_request: Request) -> Response:
        return JSONResponse(status.health())

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        status.refuse(exc.error)
        logger.info("Refused a request (%d %s): %s", exc.status, exc.error, exc.detail)
        items = [asdict(item) for item in exc.items]
        return JSONResponse(
            {"error": exc.error, "detail": exc.detail, **({"items": items} if items else {})}, exc.status
        )

    async def kafka_refused(_request: Request, exc: Exception) -> Response:
        logger.warning("Answered 503: %s", exc)
        return JSONResponse(
            {"error": "kafka_unavailable", "detail": str(exc)}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )

    return Starlette(
        routes=[
            Route("/posts", receive_posts, methods=["POST"]),
            Route("/facebook", verify_facebook, methods=["GET"]),
            Route("/facebook", receive_facebook, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={Refused: refused, KafkaRefused: kafka_refused},
        lifespan=lifespan,
    )
