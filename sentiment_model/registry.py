"""The models this installation has, and which one the pipeline serves: light to import (no torch, no flair).

Every model the build makes lives in the models folder (``SENTISTREAM_MODELS_DIR``, ignored by git) as
``<name>.pt`` beside its card ``<name>.card.json`` (the card is written last: a model without one is still
being built). While a build runs, ``<name>.progress.json`` says how far it is.

The model to serve is a *spec*: ``auto`` (the best model built so far: the full one, else the quick one),
the name of a built model, a path to a ``.pt`` file, or a Flair pretrained name (``sentiment``,
``sentiment-fast``). The app may override the configured spec by a choice on the control topic
(``common.contract.ModelChoice``); :func:`resolve` turns a spec into what a worker loads, or None while
there is nothing to load yet.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

# The model build's exit codes (``python -m sentiment_model.build``), here so the launcher reads them without torch.
EXIT_FAILED = 1
EXIT_BUSY = 75  # sysexits' EX_TEMPFAIL: try again later
EXIT_STOPPED = 128  # + the signal's number, as a shell reports a process ended by it

AUTO = "auto"
# What `auto` serves, best first; the build makes them in the opposite order (quick first, so that sentiment
# shows within minutes, the full model later).
QUICK_MODEL = "sentistream-quick"
FULL_MODEL = "sentistream-minilm-3class"
AUTO_ORDER = (FULL_MODEL, QUICK_MODEL)
# The build profile of each model the product builds by itself.
PROFILE_OF = {QUICK_MODEL: "quick", FULL_MODEL: "full"}
# Flair's own English sentiment models (fetched from Flair's server when first used, if it can be reached).
PRETRAINED = ("sentiment", "sentiment-fast")


def model_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.pt"


def card_path(model_file: Path) -> Path:
    return model_file.with_suffix(".card.json")


def progress_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.progress.json"


def log_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.build.log"


@dataclass(frozen=True)
class BuiltModel:
    name: str
    path: Path
    card: dict[str, Any]

    @property
    def version(self) -> str:
        return model_version(self.path)


def read_card(model_file: Path) -> dict[str, Any] | None:
    try:
        card = json.loads(card_path(model_file).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def built_models(models_dir: Path) -> list[BuiltModel]:
    """Every complete model in ``models_dir`` (file and card), the product's own first (full, quick), then by name."""
    found = []
    for path in sorted(models_dir.glob("*.pt")):
        card = read_card(path)
        if card is not None:
            found.append(BuiltModel(path.stem, path, card))
    rank = {name: i for i, name in enumerate(AUTO_ORDER)}
    return sorted(found, key=lambda model: (rank.get(model.name, len(rank)), model.name))


def model_version(model_file: Path) -> str:
    """Which build of a model file: when it was written (UTC), which changes with every build that replaces it
    (a build writes aside, then renames into place)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(model_file.stat().st_mtime))


def resolve(spec: str, models_dir: Path) -> str | None:
    """What a worker should load for ``spec`` (a ``.pt`` path or a pretrained name), or None while it cannot be
    loaded yet (``auto`` before the first build finished, a named model still being built)."""
    if spec == AUTO:
        for name in AUTO_ORDER:
            path = model_path(models_dir, name)
            if path.exists() and read_card(path) is not None:
                return str(path)
        return None
    if spec in PRETRAINED:
        return spec
    path = Path(spec) if spec.endswith(".pt") else model_path(models_dir, spec)
    return str(path) if path.exists() else None


class BuildProgress(BaseModel):
    """How far one model's build is (``<name>.progress.json``), for the terminal, the app's banner and the Models page."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    profile: str
    state: Literal["running", "done", "failed", "stopped"]
    phase: str = ""  # e.g. "loading data", "training", "evaluating"
    percent: float = 0.0  # of the whole build
    eta_seconds: float | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    dev_macro_f1: float | None = None
    test_macro_f1: float | None = None  # once evaluated: the published figure
    started_at: float
    updated_at: float
    pid: int | None = None
    error: str | None = None

    def is_live(self) -> bool:
        """Running, and its process still there (a build killed outright leaves "running" behind)."""
        if self.state != "running" or self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def write_progress(models_dir: Path, progress: BuildProgress) -> None:
    """Replace the progress file at once (written aside, then renamed): a reader never sees half of it."""
    target = progress_path(models_dir, progress.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(progress.model_dump_json())
    partial.replace(target)


def read_progress(models_dir: Path) -> list[BuildProgress]:
    """Every build's last progress (running or ended), newest first."""
    found = []
    for path in models_dir.glob("*.progress.json"):
        try:
            found.append(BuildProgress.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError):
            continue
    return sorted(found, key=lambda progress: progress.started_at, reverse=True)
