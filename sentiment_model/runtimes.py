"""Which runtime runs a model's encoder: torch, or ONNX Runtime (fp32, int8) on files exported beside the model.

Light to import (no torch, no flair): the Models page reads the checks from here too.

``SENTISTREAM_MODEL_RUNTIME`` asks for ``torch``, ``onnx``, ``onnx-int8`` or ``auto`` (the fastest runtime that
passed its check). ``sentiment_model.onnx_export`` makes the ONNX files once per build of a model file: the build
runs it before it writes the model's card, and ``python -m sentiment_model.onnx_export MODEL`` does it for any
other ``.pt``. The files go to ``<name>.onnx/<first 16 hex digits of the model file's SHA-256>/``, and the check
of every runtime on the held-out test set to ``<name>.runtimes.json``. A worker never exports (it would stall the
stream for a minute): when the runtime asked for has no export of this very model file, or failed its check, it
runs the next one down (``onnx-int8`` -> ``onnx`` -> ``torch``) and says why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

TORCH, ONNX, ONNX_INT8, AUTO = "torch", "onnx", "onnx-int8", "auto"
RUNTIMES = (TORCH, ONNX, ONNX_INT8)
# What runs instead of a runtime that cannot: int8 falls back to fp32, fp32 to torch.
FALLBACK = {ONNX_INT8: ONNX, ONNX: TORCH}
ONNX_FILES = {ONNX: "fp32.onnx", ONNX_INT8: "int8.onnx"}

# The checks at export, on the held-out test set, against torch on the same texts.
MIN_LABEL_AGREEMENT = 0.995  # onnx fp32: the same model, so (nearly) the same labels
MAX_MACRO_F1_DROP = 0.01  # onnx-int8: approximates the weights, so judged by what counts, its macro-F1
VALIDATION_SCHEMA = 1


def validation_path(model_file: Path) -> Path:
    return model_file.with_name(f"{model_file.stem}.runtimes.json")


def exports_dir(model_file: Path) -> Path:
    """Where every export of this model's builds goes (one folder per model file hash)."""
    return model_file.with_name(f"{model_file.stem}.onnx")


def export_dir(model_file: Path, sha256: str) -> Path:
    return exports_dir(model_file) / sha256[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RuntimeCheck(BaseModel):
    """One runtime on the held-out test set: its figures, and whether it may serve."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    runtime: str
    passed: bool
    reason: str  # why it passed or failed, in words
    accuracy: float
    macro_f1: float
    label_agreement: float  # share of test texts labelled as torch labels them
    speed: dict[str, float]  # sentences/s: batch_1, batch_32 (measured in the export run, so comparable)
    file: str | None = None  # the ONNX file, relative to the model's folder


class Validation(BaseModel):
    """``<name>.runtimes.json``: the export of one model file and every runtime's check."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = VALIDATION_SCHEMA
    model_file: str
    model_sha256: str
    exported_at: float
    onnxruntime: str
    threads: int
    test_size: int
    checks: dict[str, RuntimeCheck]

    def passed(self, models_dir: Path) -> list[RuntimeCheck]:
        """The checks that passed, whose files are there."""
        return [
            check
            for check in self.checks.values()
            if check.passed and (check.file is None or (models_dir / check.file).is_file())
        ]

    def fastest(self, models_dir: Path) -> RuntimeCheck | None:
        """What ``auto`` serves: the passed runtime with the most sentences/s at batch 32."""
        return max(self.passed(models_dir), key=lambda check: check.speed.get("batch_32", 0.0), default=None)


def read_validation(model_file: Path) -> Validation | None:
    try:
        return Validation.model_validate_json(validation_path(model_file).read_bytes())
    except (OSError, ValidationError):
        return None


def write_validation(model_file: Path, validation: Validation) -> None:
    """Replace the file at once (written aside, then renamed): a worker never reads half of it."""
    target = validation_path(model_file)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(validation.model_dump_json(indent=2) + "\n")
    partial.replace(target)


def current_validation(model_file: Path, sha256: str | None = None) -> Validation | None:
    """The validation of this very model file (same SHA-256), or None."""
    validation = read_validation(model_file)
    if validation is None or validation.model_sha256 != (sha256 or file_sha256(model_file)):
        return None
    return validation


@dataclass(frozen=True)
class Choice:
    """The runtime a model file runs on, its ONNX file (None for torch), and why, for the log."""

    runtime: str
    onnx_file: Path | None
    why: str


def choose(requested: str, model_file: Path) -> Choice:
    """The runtime to serve ``model_file`` with when ``requested`` (a runtime or ``auto``) is asked for."""
    if requested == TORCH:
        return Choice(TORCH, None, "asked for")
    validation = read_validation(model_file)
    if validation is None:
        return Choice(
            TORCH,
            None,
            f"{model_file.name} has no ONNX export "
            f"(`python -m sentiment_model.onnx_export {model_file}` makes one; the build does it for its models)",
        )
    if validation.model_sha256 != file_sha256(model_file):
        return Choice(
            TORCH,
            None,
            f"the ONNX export beside {model_file.name} is of another build of it "
            f"(`python -m sentiment_model.onnx_export {model_file}` exports this one)",
        )
    folder = model_file.parent
    if requested == AUTO:
        fastest = validation.fastest(folder)
        if fastest is None or fastest.runtime == TORCH:
            return Choice(TORCH, None, "auto: no ONNX runtime passed its check and is faster")
        return Choice(
            fastest.runtime, folder / str(fastest.file), f"auto: the fastest that passed its check ({fastest.reason})"
        )
    passed = {check.runtime: check for check in validation.passed(folder)}
    reasons = []
    runtime = requested
    while runtime != TORCH and runtime not in passed:
        check = validation.checks.get(runtime)
        if check is None:
            reasons.append(f"{runtime} was not exported")
        elif check.passed:
            reasons.append(f"{runtime}: its file {check.file} is missing")
        else:
            reasons.append(f"{runtime} failed its check: {check.reason}")
        runtime = FALLBACK[runtime]
    if runtime == TORCH:
        return Choice(TORCH, None, "; ".join(reasons))
    why = "asked for" if not reasons else "; ".join(reasons)
    return Choice(runtime, folder / str(passed[runtime].file), why)
