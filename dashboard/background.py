"""A server's background thread that never dies of an error: it logs it and starts its work again.

The results feed and the cluster monitor run one each. Whatever the work raises (a bug, a malformed
record nobody foresaw, a client library surprise), the thread waits a back-off and runs it again, so a
transient fault costs seconds of freshness instead of a dashboard frozen until the server restarts.
The work calls :meth:`BackgroundThread.succeeded` whenever it did its job; pages show that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class ThreadHealth:
    name: str
    last_success_at: float | None  # when the work last did its job
    restarts: int  # since the server started
    failing: bool  # the work failed and has not succeeded since
    last_error: str | None  # the latest unexpected error, even if it has recovered since
    last_error_at: float | None


class BackgroundThread:
    """Runs ``work(stop)`` in a daemon thread until :meth:`stop`; ``work`` returns only once ``stop`` is set."""

    def __init__(self, name: str, work: Callable[[threading.Event], None], backoff: Sequence[float] = BACKOFF_SECONDS):
        self.name = name
        self._work = work
        self._backoff = tuple(backoff)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_success_at: float | None = None
        self._restarts = 0
        self._failures = 0  # in a row, since the last success: picks the back-off
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def succeeded(self) -> None:
        with self._lock:
            self._last_success_at = time.time()
            self._failures = 0

    def health(self) -> ThreadHealth:
        with self._lock:
            return ThreadHealth(
                self.name,
                self._last_success_at,
                self._restarts,
                self._failures > 0,
                self._last_error,
                self._last_error_at,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._work(self._stop)
            except Exception as exc:  # anything: the thread must outlive every error
                with self._lock:
                    self._failures += 1
                    self._restarts += 1
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    self._last_error_at = time.time()
                    delay = self._backoff[min(self._failures, len(self._backoff)) - 1]
                logger.exception("%s stopped by an unexpected error; starting it again in %g s", self.name, delay)
                self._stop.wait(delay)
