"""Copies of the session's tiny model with their ONNX runtimes exported and checked, for the tests that run them."""

from __future__ import annotations

import shutil
from pathlib import Path

from sentiment_model import onnx_export, registry

# Enough test texts for each runtime's speed to order them (auto serves the fastest); the tiny model's card has none.
SPEED_TEXTS = 32


def exported_copy(model: Path, folder: Path, name: str = "tiny") -> Path:
    """``model`` and its card copied to ``folder`` as ``<name>.pt``, exported by the export's command line."""
    path = folder / f"{name}.pt"
    shutil.copy(model, path)
    shutil.copy(registry.card_path(model), registry.card_path(path))
    assert onnx_export.main([str(path), "--speed-texts", str(SPEED_TEXTS)]) == 0
    return path
