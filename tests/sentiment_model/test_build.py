"""The model build: a consistent model card, skipping finished builds, and reproducible training."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from common.contract import LABELS
from sentiment_model import registry
from sentiment_model.build import DOCS_CARD, EXIT_FAILED, PROFILES, build_model, card_path, main, render_markdown


@pytest.fixture(scope="module")
def card(tiny_model_path: Path) -> dict[str, Any]:
    return json.loads(card_path(tiny_model_path).read_text())


def test_card_describes_the_build(card: dict[str, Any], tiny_model_path: Path) -> None:
    assert card["profile"] == "tiny"
    assert card["config"] == PROFILES["tiny"]
    assert card["labels"] == list(LABELS)
    assert card["file"] == tiny_model_path.name
    assert card["file_size_bytes"] == tiny_model_path.stat().st_size
    assert card["training"]["seconds"] > 0
    sources = card["data"]["sources"]
    assert [s["licence"] for s in sources] == ["MIT", "MIT"]
    assert "Hutto" in sources[0]["citation"]
    assert "SHA-256" in card["data"]["split_rule"]
    per_class = card["used"]["train"]["labels"]
    assert per_class == dict.fromkeys(LABELS, PROFILES["tiny"]["max_train"])


def test_card_names_the_model_and_when_it_was_built(card: dict[str, Any], tiny_model_path: Path) -> None:
    assert card["name"] == tiny_model_path.stem == "tiny"
    # Stamped at the end of the build: after the model file was written, before now.
    assert tiny_model_path.stat().st_mtime - 1 <= card["built_at"] <= time.time()
    assert registry.resolve(str(tiny_model_path), tiny_model_path.parent) == str(tiny_model_path)


def test_card_metrics_are_consistent(card: dict[str, Any]) -> None:
    test = card["test"]
    matrix = test["confusion_matrix"]["rows_true_columns_predicted"]
    assert test["confusion_matrix"]["labels"] == list(LABELS)
    total = sum(map(sum, matrix))
    assert total == test["test_size"] == card["used"]["test"]["size"] == PROFILES["tiny"]["max_test"]
    for i, label in enumerate(LABELS):
        assert sum(matrix[i]) == test["per_class"][label]["support"] == card["used"]["test"]["labels"][label]
        assert sum(row[i] for row in matrix) > 0, f"{label} is never predicted"
    assert test["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(3)) / total, abs=1e-4)
    f1s = [test["per_class"][label]["f1"] for label in LABELS]
    assert test["macro_f1"] == pytest.approx(sum(f1s) / 3, abs=1e-3)
    # Even the tiny model must clearly beat the majority class and chance.
    majority = max(card["used"]["test"]["labels"].values()) / total
    assert test["accuracy"] > majority + 0.05
    assert test["macro_f1"] > 0.45


def test_markdown_card_carries_the_figures(card: dict[str, Any]) -> None:
    text = render_markdown(card)
    assert f"{card['test']['macro_f1']:.4f}" in text
    assert "Hutto" in text and "MIT" in text
    assert "| NEUTRAL |" in text


def test_finished_build_is_skipped(tiny_model_path: Path, card: dict[str, Any]) -> None:
    built_at = tiny_model_path.stat().st_mtime_ns
    docs_card = DOCS_CARD.stat().st_mtime_ns
    assert build_model(tiny_model_path, profile="tiny") == card
    assert main(["--profile", "tiny", "--out", str(tiny_model_path)]) == 0
    assert tiny_model_path.stat().st_mtime_ns == built_at
    # A build leaves tracked files alone: the docs' card changes only through `make model-card`.
    assert DOCS_CARD.stat().st_mtime_ns == docs_card


def test_a_model_built_before_the_export_setting_existed_is_not_rebuilt(tiny_model_path: Path, tmp_path: Path) -> None:
    model = tmp_path / tiny_model_path.name
    shutil.copy2(tiny_model_path, model)
    card = json.loads(card_path(tiny_model_path).read_text())
    del card["config"]["export_onnx"]  # as a card written before the build exported ONNX runtimes
    card_path(model).write_text(json.dumps(card))
    built_at = model.stat().st_mtime_ns
    build_model(model, profile="tiny")
    assert model.stat().st_mtime_ns == built_at


def test_card_only_renders_a_built_models_card(tiny_model_path: Path, card: dict[str, Any], tmp_path: Path) -> None:
    markdown = tmp_path / "card.md"
    assert main(["--card-only", "--out", str(tiny_model_path), "--markdown", str(markdown)]) == 0
    assert markdown.read_text() == render_markdown(card)
    assert time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(card["built_at"])) in markdown.read_text()
    assert main(["--card-only", "--out", str(tmp_path / "missing.pt"), "--markdown", str(markdown)]) == EXIT_FAILED


# The tiny profile, smaller still: training twice is what this test costs.
SMALL = {"max_train": 20, "max_dev": 10, "max_test": 40, "epochs": 3}


def test_training_is_reproducible(tmp_path: Path) -> None:
    first = build_model(tmp_path / "first.pt", profile="tiny", **SMALL)
    again = build_model(tmp_path / "again.pt", profile="tiny", **SMALL)
    assert again["used"] == first["used"] and first["used"]["test"]["size"] == SMALL["max_test"]
    assert again["test"] == first["test"]


def test_rejects_unknown_profile_and_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="profile"):
        build_model(tmp_path / "m.pt", profile="huge")
    with pytest.raises(ValueError, match="unknown settings"):
        build_model(tmp_path / "m.pt", profile="tiny", dropout=0.5)
    assert not list(tmp_path.iterdir())
