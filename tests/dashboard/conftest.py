"""Fixtures for the app's tests: the app's settings come from SENTISTREAM_* variables, like in production."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from confluent_kafka import Producer

from common.contract import Post
from common.settings import Settings, get_settings

TEXTS = [
    "I absolutely love this, what a wonderful day!",
    "This is the worst service I have ever had, awful.",
    "The meeting is scheduled for 3pm on Tuesday.",
]


def use_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``settings`` what the app's get_settings() returns."""
    for name in [name for name in os.environ if name.startswith("SENTISTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture
def release_server_objects() -> Iterator[None]:
    """After the test: stop the results feed and the producer the app created, forget cached settings."""
    yield
    st.cache_resource.clear()
    st.cache_data.clear()
    get_settings.cache_clear()


@pytest.fixture
def app_settings(
    settings: Settings, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch, release_server_objects: None
) -> Settings:
    """Test topics and the tiny model, as the app's settings."""
    app = settings.model_copy(update={"model": str(tiny_model_path), "batch_max_wait_ms": 50})
    use_settings(app, monkeypatch)
    return app


def send_posts(settings: Settings, posts: list[Post]) -> None:
    producer = Producer(settings.kafka_client_config())
    for post in posts:
        producer.produce(settings.topic_posts, post.to_bytes(), post.author.encode())
    assert producer.flush(30) == 0


def make_posts(count: int, source: str = "twitter") -> list[Post]:
    return [Post(author=f"author-{i % 5}", source=source, text=TEXTS[i % len(TEXTS)]) for i in range(count)]
