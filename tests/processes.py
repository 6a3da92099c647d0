"""Running the product's own entry points as child processes, the way people run them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil

from common.settings import PROJECT_ROOT, Settings


@contextlib.contextmanager
def running(
    settings: Settings, *args: str, log: Path | None = None, stop_timeout: float = 60.0
) -> Iterator[subprocess.Popen]:
    """``python -m <args>`` with ``settings`` in its environment (output appended to ``log`` if given);
    SIGTERM on exit, which must stop it and its children cleanly."""
    with open(log, "ab") if log else contextlib.nullcontext() as out:
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=settings.child_environment(),
                                   stdout=out, stderr=subprocess.STDOUT if log else None)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
                process.kill()
                process.wait()
                raise AssertionError(f"{args} did not stop within {stop_timeout} s of SIGTERM; log: {log}") from None
