"""Fixtures for the app's tests: the app's settings come from SENTISTREAM_* variables, like in production."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from common.contract import Post
from common.settings import Settings, get_settings
from sentiment_model import pretrained
from tests.processes import free_port

TEXTS = [
    "I absolutely love this, what a wonderful day!",
    "This is the worst service I have ever had, awful.",
    "The meeting is scheduled for 3pm on Tuesday.",
]


@pytest.fixture(autouse=True)
def offline_flair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Flair's cache is an empty folder of the test's and its server refuses (a local port nobody listens on): the
    app's check of a pretrained model (Models page) never reaches the internet. The cache folder is returned."""
    refusing = f"http://127.0.0.1:{free_port()}"
    for name, url in list(pretrained.PRETRAINED_URLS.items()):
        monkeypatch.setitem(pretrained.PRETRAINED_URLS, name, f"{refusing}/{url.rsplit('/', 1)[1]}")
    cache = tmp_path / "flair-cache"
    monkeypatch.setenv("FLAIR_CACHE_ROOT", str(cache))
    return cache


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


def make_posts(count: int, source: str = "twitter") -> list[Post]:
    return [Post(author=f"author-{i % 5}", source=source, text=TEXTS[i % len(TEXTS)]) for i in range(count)]
