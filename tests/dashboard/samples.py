"""Results as the dashboard receives them, made up for its tests: on the wire, parsed, and a feed without Kafka."""

from __future__ import annotations

import json
import time

from common.settings import Settings
from dashboard.records import ResultRecord
from dashboard.results_feed import ResultsFeed


def result_json(
    post_id: str,
    label: str = "POSITIVE",
    score: float = 0.9,
    *,
    source: str = "twitter",
    author: str = "ada",
    produced_at: float | None = None,
    text: str = "hello",
) -> bytes:
    now = time.time()
    return json.dumps(
        {
            "schema_version": 1,
            "post_id": post_id,
            "author": author,
            "source": source,
            "text": text,
            "label": label,
            "score": score,
            "model": "tiny",
            "created_at": now - 2,
            "produced_at": produced_at if produced_at is not None else now - 1,
            "processed_at": now,
        }
    ).encode()


def record(
    post_id: str = "p", label: str = "POSITIVE", score: float = 0.8, at: float | None = None, **fields
) -> ResultRecord:
    at = time.time() if at is None else at
    values = {"author": "ada", "source": "twitter", "text": "t", "produced_at": at - 0.5} | fields
    return ResultRecord(
        post_id, values["author"], values["source"], values["text"], label, score, values["produced_at"], at
    )


def feed(**options) -> ResultsFeed:
    return ResultsFeed(Settings(bootstrap_servers="127.0.0.1:1"), **options)  # never started: no Kafka needed
