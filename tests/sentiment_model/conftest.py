"""The tiny model with its ONNX runtimes exported, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sentiment_model.onnx_models import exported_copy


@pytest.fixture(scope="session")
def onnx_model_path(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_copy(tiny_model_path, tmp_path_factory.mktemp("onnx-model"))
