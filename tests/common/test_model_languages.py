"""SENTISTREAM_MODEL_LANGUAGES: the one place that says which languages the served model reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import Settings


def test_the_model_reads_english_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTISTREAM_MODEL_LANGUAGES", raising=False)
    assert Settings().model_language_set == frozenset({"en"})


def test_languages_come_from_the_environment_and_reach_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTISTREAM_MODEL_LANGUAGES", "en,de")
    settings = Settings()
    assert settings.model_language_set == frozenset({"en", "de"})
    environment = settings.as_environment()
    assert environment["SENTISTREAM_MODEL_LANGUAGES"] == "en,de"
    monkeypatch.setenv("SENTISTREAM_MODEL_LANGUAGES", environment["SENTISTREAM_MODEL_LANGUAGES"])
    assert Settings().model_language_set == settings.model_language_set


@pytest.mark.parametrize("value", ["", "EN", "en, de", "en-GB", "en,,de", "*"])
def test_anything_but_comma_separated_primary_subtags_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SENTISTREAM_MODEL_LANGUAGES", value)
    with pytest.raises(ValidationError, match="model_languages"):
        Settings()
