"""The ONNX runtimes on the real tiny model: export, the checks on the held-out test set, and which runtime serves."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from common.contract import LABELS
from common.settings import Settings
from dashboard.models import onnx_speed_rows, speed_frame
from sentiment_model import onnx_export, registry, runtimes
from sentiment_model.build import PROFILES, build_model, render_markdown
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.runtimes import AUTO, ONNX, ONNX_INT8, TORCH, Validation
from tests.sentiment_model.onnx_models import exported_copy
from tests.sentiment_model.test_classifier import TEXTS as CLASSIFIER_TEXTS

TEXTS = CLASSIFIER_TEXTS[:8]


@pytest.fixture(scope="module")
def validation(onnx_model_path: Path) -> Validation:
    checked = runtimes.read_validation(onnx_model_path)
    assert checked is not None
    return checked


@pytest.fixture(scope="module")
def torch_model(onnx_model_path: Path) -> SentimentClassifier:
    return SentimentClassifier.load(str(onnx_model_path), torch_threads=2)


def test_the_export_is_keyed_by_the_model_files_hash_and_checks_every_runtime(
    onnx_model_path: Path, validation: Validation
) -> None:
    sha256 = runtimes.file_sha256(onnx_model_path)
    assert validation.model_sha256 == sha256 and validation.model_file == "tiny.pt"
    assert list(validation.checks) == [TORCH, ONNX, ONNX_INT8]
    folder = runtimes.export_dir(onnx_model_path, sha256)
    assert sorted(path.name for path in folder.iterdir()) == ["fp32.onnx", "int8.onnx"]
    assert validation.checks[ONNX].file == str(folder.relative_to(onnx_model_path.parent) / "fp32.onnx")
    # int8 weights are a quarter of fp32's.
    assert (folder / "int8.onnx").stat().st_size < 0.4 * (folder / "fp32.onnx").stat().st_size
    # The held-out test set is the card's: torch's figures there are the build's own.
    card = registry.read_card(onnx_model_path)
    assert card is not None and validation.test_size == card["test"]["test_size"] == PROFILES["tiny"]["max_test"]
    torch_check = validation.checks[TORCH]
    assert (torch_check.accuracy, torch_check.macro_f1) == (card["test"]["accuracy"], card["test"]["macro_f1"])
    assert all(check.speed["batch_1"] > 0 and check.speed["batch_32"] > 0 for check in validation.checks.values())


def test_each_check_passes_exactly_when_its_rule_holds(validation: Validation) -> None:
    torch_f1 = validation.checks[TORCH].macro_f1
    onnx, int8 = validation.checks[ONNX], validation.checks[ONNX_INT8]
    # fp32 is the same computation: all but a handful of labels, if any, are torch's.
    assert onnx.passed and onnx.label_agreement >= runtimes.MIN_LABEL_AGREEMENT
    assert int8.passed == (torch_f1 - int8.macro_f1 <= runtimes.MAX_MACRO_F1_DROP)
    assert f"{int8.macro_f1:.4f}" in int8.reason and f"{torch_f1:.4f}" in int8.reason


def test_the_card_lists_every_runtime_with_its_figures(onnx_model_path: Path, validation: Validation) -> None:
    card = registry.read_card(onnx_model_path)
    assert card is not None and Validation.model_validate(card["runtimes"]) == validation
    markdown = render_markdown(card)
    assert "## Runtimes" in markdown
    for check in validation.checks.values():
        assert f"| {check.runtime} | {check.accuracy:.4f} | {check.macro_f1:.4f} |" in markdown
    fastest = validation.fastest(onnx_model_path.parent)
    assert fastest is not None and f"serves **{fastest.runtime}**" in markdown
    # The Models page's speed table: the ONNX rows with their checks.
    rows = onnx_speed_rows(card)
    assert [row["runtime"] for row in rows] == ["ONNX Runtime fp32", "ONNX Runtime int8"]
    assert [row["macro-F1"] for row in rows] == [
        validation.checks[ONNX].macro_f1,
        validation.checks[ONNX_INT8].macro_f1,
    ]
    assert rows[0]["check"].startswith("passed: ")
    assert list(speed_frame(card)["runtime"]) == ["ONNX Runtime fp32", "ONNX Runtime int8"]  # tiny: no torch speed


def test_onnx_gives_torchs_predictions(onnx_model_path: Path, torch_model: SentimentClassifier) -> None:
    model = SentimentClassifier.load(str(onnx_model_path), torch_threads=2, runtime=ONNX)
    assert (model.runtime, model.name, model.version) == (ONNX, "tiny", torch_model.version)
    expected = torch_model.predict(TEXTS)
    predicted = model.predict(TEXTS, batch_size=3)
    assert [p.label for p in predicted] == [p.label for p in expected]
    assert [p.score for p in predicted] == pytest.approx([p.score for p in expected], abs=1e-3)


def test_onnx_int8_is_a_real_model_named_as_the_int8_variant(onnx_model_path: Path) -> None:
    model = SentimentClassifier.load(str(onnx_model_path), torch_threads=2, runtime=ONNX_INT8)
    assert (model.runtime, model.name) == (ONNX_INT8, "tiny-int8")
    clear = {
        "I love it, this is wonderful and amazing!": "POSITIVE",
        "This is horrible, I hate it, worst ever.": "NEGATIVE",
    }
    assert [p.label for p in model.predict(list(clear))] == list(clear.values())
    predictions = model.predict([*TEXTS, "\u200b"])
    assert all(p.label in LABELS and 0.0 <= p.score <= 1.0 for p in predictions)
    assert predictions[-1].score == 0.0  # a token-less text, as on torch


def test_auto_serves_the_fastest_runtime_that_passed(onnx_model_path: Path, validation: Validation) -> None:
    fastest = validation.fastest(onnx_model_path.parent)
    assert fastest is not None
    assert all(
        fastest.speed["batch_32"] >= check.speed["batch_32"] for check in validation.passed(onnx_model_path.parent)
    )
    assert SentimentClassifier.load(str(onnx_model_path), runtime=AUTO).runtime == fastest.runtime
    assert Settings.model_fields["model_runtime"].default == AUTO


@pytest.fixture
def copy_of(onnx_model_path: Path, tmp_path: Path) -> Path:
    """The exported model copied elsewhere with its export, as a folder of models holds it."""
    path = tmp_path / onnx_model_path.name
    shutil.copy(onnx_model_path, path)
    shutil.copy(runtimes.validation_path(onnx_model_path), runtimes.validation_path(path))
    shutil.copytree(runtimes.exports_dir(onnx_model_path), runtimes.exports_dir(path))
    return path


def rewrite_checks(path: Path, **passed: bool) -> None:
    validation = runtimes.read_validation(path)
    assert validation is not None
    checks = {
        name: check.model_copy(update={"passed": passed.get(name.replace("-", "_"), check.passed), "reason": "judged"})
        for name, check in validation.checks.items()
    }
    runtimes.write_validation(path, validation.model_copy(update={"checks": checks}))


def test_a_runtime_that_failed_its_check_gives_way_to_the_next_one_and_says_why(
    copy_of: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite_checks(copy_of, onnx_int8=False)
    with caplog.at_level(logging.INFO, logger="sentiment_model.classifier"):
        model = SentimentClassifier.load(str(copy_of), runtime=ONNX_INT8)
    assert (model.runtime, model.name) == (ONNX, "tiny")
    assert "model tiny runs on onnx (onnx-int8 was asked for): onnx-int8 failed its check: judged" in caplog.text
    # auto: the faster of the two left (the speeds are measured, so either may be).
    left = runtimes.read_validation(copy_of)
    assert left is not None and {check.runtime for check in left.passed(copy_of.parent)} == {TORCH, ONNX}
    fastest = left.fastest(copy_of.parent)
    assert fastest is not None and SentimentClassifier.load(str(copy_of), runtime=AUTO).runtime == fastest.runtime

    rewrite_checks(copy_of, onnx=False)
    choice = runtimes.choose(ONNX_INT8, copy_of)
    assert (choice.runtime, choice.onnx_file) == (TORCH, None)
    assert choice.why == "onnx-int8 failed its check: judged; onnx failed its check: judged"
    assert SentimentClassifier.load(str(copy_of), runtime=AUTO).runtime == TORCH


def test_an_export_of_another_build_is_not_used_and_a_worker_never_exports(
    copy_of: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    validation = runtimes.read_validation(copy_of)
    assert validation is not None
    runtimes.write_validation(copy_of, validation.model_copy(update={"model_sha256": "0" * 64}))
    with caplog.at_level(logging.INFO, logger="sentiment_model.classifier"):
        assert SentimentClassifier.load(str(copy_of), runtime=ONNX).runtime == TORCH
    assert "the ONNX export beside tiny.pt is of another build of it" in caplog.text

    bare = tmp_path / "bare" / "tiny.pt"
    bare.parent.mkdir()
    shutil.copy(copy_of, bare)
    assert SentimentClassifier.load(str(bare), runtime=AUTO).runtime == TORCH
    assert sorted(path.name for path in bare.parent.iterdir()) == ["tiny.pt"]


def test_an_export_of_this_very_file_is_not_done_twice(onnx_model_path: Path, validation: Validation) -> None:
    again = onnx_export.export_runtimes(onnx_model_path, speed_texts=0)
    assert again == validation


def test_a_failed_check_is_recorded_and_the_runtime_not_served(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rules no runtime can meet: more than every label as torch's, a macro-F1 above torch's.
    monkeypatch.setattr(runtimes, "MIN_LABEL_AGREEMENT", 1.01)
    monkeypatch.setattr(runtimes, "MAX_MACRO_F1_DROP", -1.0)
    path = exported_copy(tiny_model_path, tmp_path)
    validation = runtimes.read_validation(path)
    assert validation is not None
    assert [check.passed for check in validation.checks.values()] == [True, False, False]
    assert "below 101.0%" in validation.checks[ONNX].reason
    assert "more than -1.0 below" in validation.checks[ONNX_INT8].reason
    for asked in (ONNX, ONNX_INT8, AUTO):
        assert SentimentClassifier.load(str(path), runtime=asked).runtime == TORCH
    card = registry.read_card(path)
    assert card is not None and "| onnx-int8 |" in render_markdown(card) and "FAILED" in render_markdown(card)


def test_the_build_exports_before_the_model_counts_as_built(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    card = build_model(out, profile="tiny", export_onnx=True, max_train=20, max_test=60, epochs=1)
    validation = runtimes.read_validation(out)
    assert validation is not None and validation.model_sha256 == runtimes.file_sha256(out)
    assert card["runtimes"] == json.loads(validation.model_dump_json())
    assert registry.read_card(out) == card
    assert validation.checks[TORCH].macro_f1 == card["test"]["macro_f1"]
    assert [p.state for p in registry.read_progress(tmp_path)] == ["done"]
    log = registry.log_path(tmp_path, "m").read_text()
    assert log.index("ONNX export: checking onnx-int8") < log.index(f"wrote {out}")


def test_a_model_built_before_the_export_is_exported_by_the_next_build(tiny_model_path: Path, tmp_path: Path) -> None:
    # As a model of a profile that exports, built when the build did not: its card and file, no export.
    out = tmp_path / "m.pt"
    shutil.copy(tiny_model_path, out)
    card = json.loads(registry.card_path(tiny_model_path).read_text())
    card["config"]["export_onnx"] = True
    registry.card_path(out).write_text(json.dumps(card))
    built = out.stat().st_mtime_ns

    exported = build_model(out, profile="tiny", export_onnx=True)
    assert out.stat().st_mtime_ns == built  # not rebuilt
    validation = runtimes.read_validation(out)
    assert validation is not None and validation.model_sha256 == runtimes.file_sha256(out)
    assert exported["runtimes"] == json.loads(validation.model_dump_json()) and exported["test"] == card["test"]
    assert registry.read_card(out) == exported
    progress = registry.read_progress(tmp_path)
    assert [(p.state, p.phase) for p in progress] == [("done", "checking runtimes")]
    assert build_model(out, profile="tiny", export_onnx=True) == exported  # exported: nothing more to do
