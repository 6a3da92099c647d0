"""Running the product's own entry points as child processes, the way people run them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

from common.settings import PROJECT_ROOT, Settings


@contextlib.contextmanager
def running(settings: Settings, *args: str, stop_timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    """``python -m <args>`` with ``settings`` in its environment; SIGTERM on exit, which must stop it cleanly."""
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=settings.child_environment())
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"{args} did not stop within {stop_timeout} s of SIGTERM") from None
