"""Where a pipeline worker spends its time: a py-spy sample of the classifier worker, in three parts.

``python -m bench --only pipeline --profile`` samples the worker while it runs flat out and reports the
share of samples in the model's forward pass (torch or ONNX Runtime), in preparing text for it (Flair sentences, the
tokenizers) and in everything else (Kafka, Quix, validation, results). The raw samples are kept next
to the report so the split can be checked or drawn as a flame graph.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

PARTS = (
    "model forward pass (torch or ONNX Runtime)",
    "text preparation (Flair sentences, tokenizers)",
    "Kafka, Quix, validation, results",
)
# Frames that mark a sample's part, checked in this order.
_FORWARD_PASS = ("torch/nn/modules/", "transformers/models/", "onnxruntime/")
_TEXT_PREPARATION = ("flair/", "transformers/", "segtok/", "tokenizers/")


def part_of(stack: str) -> str:
    """The part a sampled stack (py-spy raw format: frames joined by ';', outermost first) belongs to."""
    if any(marker in stack for marker in _FORWARD_PASS):
        return PARTS[0]
    if any(marker in stack for marker in _TEXT_PREPARATION):
        return PARTS[1]
    return PARTS[2]


def breakdown(raw: str) -> dict[str, object]:
    """Share of samples per part, from py-spy's raw output (one "stack count" per line)."""
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack.strip():  # py-spy writes an empty stack when it could not read one
            samples[part_of(stack)] += int(count)
    total = sum(samples.values())
    return {"samples": total, "shares": {part: samples[part] / total if total else 0.0 for part in PARTS}}


def classifier_worker(supervisor_pid: int) -> psutil.Process | None:
    for child in psutil.Process(supervisor_pid).children(recursive=True):
        if "classify" in child.cmdline():
            return child
    return None


class WorkerProfiler(threading.Thread):
    """Waits ``delay`` seconds (model loading, warm-up), then samples the classifier worker for ``seconds``."""

    def __init__(self, supervisor_pid: int, delay: float, seconds: float, out: Path):
        super().__init__(name="worker-profiler", daemon=True)
        self._supervisor_pid, self._delay, self._seconds, self._out = supervisor_pid, delay, seconds, out
        self.result: dict[str, object] | None = None

    def run(self) -> None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if py_spy is None:
            logger.warning("py-spy is not installed (requirements-dev.txt): no profile")
            return
        threading.Event().wait(self._delay)
        worker = classifier_worker(self._supervisor_pid)
        if worker is None:
            logger.warning("no classifier worker to profile")
            return
        recorded = subprocess.run(
            [
                py_spy,
                "record",
                "--pid",
                str(worker.pid),
                "--duration",
                str(int(self._seconds)),
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self._out),
            ],
            capture_output=True,
            text=True,
        )
        if recorded.returncode != 0:
            # Typically ptrace rights: run as root or with kernel.yama.ptrace_scope=0.
            logger.warning("py-spy could not sample the worker: %s", recorded.stderr.strip()[-500:])
            return
        self.result = {"seconds": self._seconds, "raw": self._out.name, **breakdown(self._out.read_text())}
