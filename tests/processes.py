"""Running the product's own entry points as child processes, the way people run them."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from common.settings import PROJECT_ROOT, Settings


@contextlib.contextmanager
def running(
    settings: Settings,
    *args: str,
    log: Path | None = None,
    stop_timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """``python -m <args>`` with ``settings`` (and ``extra_env``) in its environment, output appended to ``log``
    if given; SIGTERM on exit, which must stop it and its children cleanly."""
    with open(log, "ab") if log else contextlib.nullcontext() as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=PROJECT_ROOT,
            env={**settings.child_environment(), **(extra_env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if log else None,
        )
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the Streamlit server at ``url`` (started as ``process``) answers its health check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "streamlit exited at start"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"streamlit did not become healthy within {timeout} s")


@contextlib.contextmanager
def streamlit_served(arguments: list[str], environment: dict[str, str]) -> Iterator[str]:
    """``python <arguments> --server.port P --server.headless true`` serving the app; yields its URL once healthy,
    and stops it on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *arguments, "--server.port", str(port), "--server.headless", "true"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
