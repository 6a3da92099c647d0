"""The Models page's logic and the model banners of every page, without Streamlit: which model is served, what
its card says, how far a build is.

Cards come from ``sentiment_model.registry`` (files in the models folder); what the pipeline serves comes from
its supervisors' heartbeats (data from Kafka: shown as text, never as Markdown, unless it names a known model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError as PydanticValidationError

from sentiment_model import registry
from sentiment_model.registry import BuildProgress, BuiltModel
from sentiment_model.runtimes import Validation

KIND_NAMES = {"quick": "quick", "full": "full"}


def profile_of(model: BuiltModel) -> str | None:
    """The build profile a model was made with: its card's, else the product's name for it."""
    profile = model.card.get("profile")
    return profile if isinstance(profile, str) else registry.PROFILE_OF.get(model.name)


def is_quick(model: BuiltModel) -> bool:
    return model.name == registry.QUICK_MODEL or profile_of(model) == "quick"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def held_out(card: dict[str, Any]) -> dict[str, Any]:
    test = card.get("test")
    return test if isinstance(test, dict) else {}


def macro_f1(model: BuiltModel) -> float | None:
    return _number(held_out(model.card).get("macro_f1"))


def accuracy(model: BuiltModel) -> float | None:
    return _number(held_out(model.card).get("accuracy"))


def describe(model: BuiltModel) -> str:
    """One line: name, kind and held-out macro-F1 (for a choice list or a banner; plain text)."""
    parts = [model.name]
    profile = profile_of(model)
    if is_quick(model):
        parts.append("quick model, less accurate")
    elif profile:
        parts.append(f"{profile} model")
    f1 = macro_f1(model)
    if f1 is not None:
        parts.append(f"held-out macro-F1 {f1:.3f}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def find_built(served: str, built: list[BuiltModel]) -> BuiltModel | None:
    """The built model a heartbeat's ``model`` (a path, a name, with ``-int8`` when quantised) stands for."""
    name = Path(served).stem if served.endswith(".pt") else served
    for candidate in (name, name.removesuffix("-int8")):
        for model in built:
            if served.endswith(".pt") and Path(served) == model.path:
                return model
            if model.name == candidate:
                return model
    return None


def full_model(built: list[BuiltModel]) -> BuiltModel | None:
    return next((model for model in built if model.name == registry.FULL_MODEL), None)


# --- what the pipeline serves ----------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """What one live supervisor's classifiers serve, or why they wait."""

    host: str
    pid: int
    model: str | None  # as the heartbeat says (a path or a pretrained name): data
    built: BuiltModel | None  # the built model it is, if known here
    waiting_for: str | None  # data
    heartbeat_age: float
    version: str | None  # of the model the workers loaded, as the heartbeat says


def served(supervisors: tuple[Any, ...], built: list[BuiltModel], now: float) -> list[Served]:
    return [
        Served(
            status.host,
            status.pid,
            status.model,
            find_built(status.model, built) if status.model else None,
            status.waiting_for_model if not status.model else None,
            max(now - status.sent_at, 0.0),
            status.model_version,
        )
        for status in supervisors
    ]


def served_name(item: Served) -> str:
    """A served model's name as shown: the built model's, a pretrained name, else the heartbeat's text."""
    if item.built is not None:
        return item.built.name
    return item.model or ""


def choice_in_effect(spec: str, served_models: tuple[str, ...], models_dir: Path) -> bool | None:
    """Whether the pipeline serves what ``spec`` means now: True, False, or None when it cannot be loaded yet."""
    target = registry.resolve(spec, models_dir)
    if target is None:
        return None
    return bool(served_models) and all(
        model == target or Path(model).stem.removesuffix("-int8") == Path(target).stem for model in served_models
    )


# --- a model's card --------------------------------------------------------------------------------


def per_class_frame(card: dict[str, Any]) -> pd.DataFrame:
    per_class = held_out(card).get("per_class") or {}
    return pd.DataFrame(
        [
            {
                "class": label,
                "precision": scores.get("precision"),
                "recall": scores.get("recall"),
                "F1": scores.get("f1"),
                "support": scores.get("support"),
            }
            for label, scores in per_class.items()
            if isinstance(scores, dict)
        ]
    )


def confusion(card: dict[str, Any]) -> tuple[list[str], list[list[int]]] | None:
    """Labels and rows (true) by columns (predicted), or None if the card has none."""
    matrix = held_out(card).get("confusion_matrix")
    if not isinstance(matrix, dict):
        return None
    labels, rows = matrix.get("labels"), matrix.get("rows_true_columns_predicted")
    if not isinstance(labels, list) or not isinstance(rows, list) or len(rows) != len(labels):
        return None
    return [str(label) for label in labels], rows


def by_source_frame(card: dict[str, Any]) -> pd.DataFrame:
    by_source = held_out(card).get("by_source_accuracy") or {}
    tested = ((card.get("used") or {}).get("test") or {}).get("sources") or {}
    return pd.DataFrame(
        [
            {"source": source, "accuracy": value, "examples": tested.get(source)}
            for source, value in sorted(by_source.items(), key=lambda item: item[1])
        ]
    )


def speed_frame(card: dict[str, Any]) -> pd.DataFrame:
    """Sentences per second by runtime (torch fp32; torch int8 and ONNX Runtime when measured) and batch size, with
    their accuracy."""
    rows = []
    fp32 = card.get("speed_sentences_per_second")
    threads = (card.get("config") or {}).get("torch_threads")
    if isinstance(fp32, dict):
        rows.append(
            {
                "runtime": "torch fp32",
                "batch 1": fp32.get("batch_1"),
                "batch 32": fp32.get("batch_32"),
                "accuracy": _number(held_out(card).get("accuracy")),
                "macro-F1": _number(held_out(card).get("macro_f1")),
                "threads": threads,
            }
        )
    int8 = card.get("test_int8_dynamic_quantization")
    if isinstance(int8, dict):
        speed = int8.get("speed_sentences_per_second") or {}
        rows.append(
            {
                "runtime": "torch int8 (dynamic quantisation)",
                "batch 1": speed.get("batch_1"),
                "batch 32": speed.get("batch_32"),
                "accuracy": _number(int8.get("accuracy")),
                "macro-F1": _number(int8.get("macro_f1")),
                "threads": threads,
            }
        )
    rows += onnx_speed_rows(card)
    return pd.DataFrame(rows)


ONNX_TITLES = {"onnx": "ONNX Runtime fp32", "onnx-int8": "ONNX Runtime int8"}


def onnx_speed_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The ONNX runtimes checked at export (``sentiment_model.runtimes``): figures, and whether each may serve."""
    recorded = card.get("runtimes")
    try:
        validation = Validation.model_validate(recorded) if isinstance(recorded, dict) else None
    except PydanticValidationError:
        return []
    if validation is None:
        return []
    return [
        {
            "runtime": ONNX_TITLES.get(check.runtime, check.runtime),
            "batch 1": check.speed.get("batch_1"),
            "batch 32": check.speed.get("batch_32"),
            "accuracy": check.accuracy,
            "macro-F1": check.macro_f1,
            "threads": validation.threads,
            "check": f"{'passed' if check.passed else 'failed'}: {check.reason}",
        }
        for check in validation.checks.values()
        if check.runtime in ONNX_TITLES
    ]


def data_frame(card: dict[str, Any]) -> pd.DataFrame:
    """The card's data sources: where each comes from, its licence, how it is labelled."""
    sources = (card.get("data") or {}).get("sources") or []
    return pd.DataFrame(
        [
            {
                "data set": source.get("name"),
                "package": f"{source.get('package')}=={source.get('version')}" if source.get("package") else None,
                "licence": source.get("licence"),
                "labels": source.get("labelling"),
                "cite": source.get("citation"),
            }
            for source in sources
            if isinstance(source, dict)
        ]
    )


def size_text(card: dict[str, Any], path: Path | None = None) -> str:
    size = _number(card.get("file_size_bytes"))
    if size is None and path is not None:
        try:
            size = float(path.stat().st_size)
        except OSError:
            return "–"
    return "–" if size is None else f"{size / 1e6:.1f} MB"


# --- builds ----------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s" if minutes < 10 else f"{minutes} min"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest:02d} min"


def build_kind(progress: BuildProgress) -> str:
    """quick or full for the product's models (``Building the quick model``), else the model's name."""
    return KIND_NAMES.get(progress.profile) or KIND_NAMES.get(registry.PROFILE_OF.get(progress.name, "")) or "custom"


def progress_line(progress: BuildProgress) -> str:
    """``<phase> <percent>% (ETA ...)``: plain text."""
    eta = f" (ETA {duration(progress.eta_seconds)})" if progress.eta_seconds is not None else " (ETA not known yet)"
    phase = progress.phase or "starting"
    return f"{phase} {progress.percent:.0f}%{eta}"


def banner_text(progress: BuildProgress) -> str:
    kind = build_kind(progress)
    subject = f"the {kind} model" if kind != "custom" else f"model {progress.name}"
    return f"Building {subject}: {progress_line(progress)}"


@dataclass(frozen=True)
class BuildView:
    progress: BuildProgress
    live: bool  # its process runs

    @property
    def stale(self) -> bool:
        """Says "running", but its process is gone: the build was killed (or its machine stopped)."""
        return self.progress.state == "running" and not self.live


def bar_text(view: BuildView) -> str:
    """What a build's progress bar says: how far, and for one that is not running, how it ended."""
    progress = view.progress
    if view.live:
        return progress_line(progress)
    where = f"{progress.phase or 'starting'} {progress.percent:.0f}%"
    if view.stale:
        return f"stopped at {where}: its process is gone"
    if progress.state == "done":
        return "done"
    return f"{progress.state} at {where}"


def builds(models_dir: Path) -> list[BuildView]:
    return [BuildView(progress, progress.is_live()) for progress in registry.read_progress(models_dir)]


def live_builds(models_dir: Path) -> list[BuildProgress]:
    return [view.progress for view in builds(models_dir) if view.live]
