"""Settings derived from the machine: the classifier workers' threads."""

from __future__ import annotations

import os

import pytest

from common.settings import Settings


def test_classifier_workers_share_the_cores_unless_threads_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTISTREAM_TORCH_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [Settings().worker_threads(workers) for workers in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert Settings(torch_threads=3).worker_threads(2) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one thread
    assert Settings().worker_threads() == 1
