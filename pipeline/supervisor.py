"""Runs N classifier workers and one statistics worker as child processes, restarting any that crash.

Quix installs signal handlers and owns its main loop, so each worker is a process of its own; the
supervisor forwards SIGTERM/SIGINT to them and waits for their clean stop.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)


@dataclass
class Worker:
    role: str
    process: subprocess.Popen | None = None
    crashes: int = 0
    restart_at: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "pipeline", "worker", self.role])
        self.started_at = time.monotonic()
        logger.info("Started %s worker (pid %d)", self.role, self.process.pid)


class Supervisor:
    def __init__(self, classifier_workers: int, statistics: bool = True):
        self.workers = [Worker("classify") for _ in range(classifier_workers)]
        if statistics:
            self.workers.append(Worker("stats"))
        self._stopping = False

    def _on_signal(self, signum: int, _frame) -> None:
        logger.info("Received %s: stopping workers", signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for worker in self.workers:
            worker.start()
        while not self._stopping:
            self._restart_crashed()
            time.sleep(0.5)
        return self._stop_all()

    def _restart_crashed(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            code = worker.process.poll() if worker.process else None
            if worker.process and code is not None:
                # A worker that ran a while before dying starts its backoff afresh.
                if now - worker.started_at > 60:
                    worker.crashes = 0
                delay = RESTART_BACKOFF_SECONDS[min(worker.crashes, len(RESTART_BACKOFF_SECONDS) - 1)]
                logger.warning("%s worker (pid %d) exited with %d; restarting in %d s",
                               worker.role, worker.process.pid, code, delay)
                worker.crashes += 1
                worker.process = None
                worker.restart_at = now + delay
            elif worker.process is None and now >= worker.restart_at:
                worker.start()

    def _stop_all(self, timeout: float = 30.0) -> int:
        running = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("Worker %d did not stop in %.0f s; killing it", process.pid, timeout)
                process.kill()
                process.wait()
        return 0
