"""Runs N classifier workers and one statistics worker as child processes: restarts, isolates, reports.

Quix installs signal handlers and owns its main loop, so each worker is a process of its own; the
supervisor forwards SIGTERM/SIGINT to them and waits for their clean stop. A worker that dies is started
again after a back-off. If it may have died of a message (not of Kafka, memory or the model file), its
slot's next process runs in careful mode, which pins a repeated crash to one message; the supervisor
counts crashes per message in the poison ledger (``pipeline.poison``). Restarts are counted over a window,
and a worker restarted ``crash_loop_restarts`` times in it is reported as crash-looping. Every
``status_interval_seconds`` the supervisor publishes its workers' states to the status topic.

The classifier workers serve the model the app chose last (the control topic), else ``SENTISTREAM_MODEL``
(``pipeline.model_choice``). Until that model exists (``auto`` before the first build) no classifier runs and
posts wait in Kafka; when the model to serve changes (a better one built, another chosen), the classifiers
stop cleanly, committing their last checkpoint, and their successors load the new one: the switch happens
at a checkpoint boundary, so no post is lost or scored twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from common.contract import PipelineStatus, WorkerRole, WorkerState, WorkerStatus
from common.settings import Settings
from pipeline.instance import WorkerIdentity, claim_instance
from pipeline.model_choice import ChoiceReader, ModelSelector, Target
from pipeline.status import StatusPublisher
from pipeline.watchdog import STUCK_EXIT_CODE
from pipeline.worker import STATE_RESET_EXIT_CODE, WorkerFiles, ledger_for

logger = logging.getLogger(__name__)

RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)
# A worker that ran this long before dying starts its back-off afresh; one running this long after a crash
# loop is no longer reported as crash-looping.
HEALTHY_RUN_SECONDS = 60.0
# Ended from outside (an operator, or the kernel's OOM killer for SIGKILL), not by what it was processing;
# a native crash (SIGSEGV, SIGABRT, SIGBUS...) may be a message's doing.
_OUTSIDE_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL}


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Worker:
    identity: WorkerIdentity
    files: WorkerFiles
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    careful: bool = False  # the current (or next) process runs in careful mode
    backoff_step: int = 0
    restarts: deque[float] = field(default_factory=deque)  # crash restarts within the window
    restarts_total: int = 0
    last_exit: str | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    stuck_at: str | None = None
    poisoned: int = 0
    state_resets: int = 0

    @property
    def role(self) -> WorkerRole:
        return self.identity.role

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "pipeline",
            "worker",
            self.role,
            "--instance",
            self.identity.instance,
            "--slot",
            str(self.identity.slot),
        ]
        return [*command, "--careful"] if self.careful else command


class Supervisor:
    def __init__(self, settings: Settings, classifier_workers: int, statistics: bool = True):
        self.settings = settings
        self._classifier_workers = classifier_workers
        self._statistics = statistics
        self.workers: list[Worker] = []
        self._stopping = False
        self._ledger = ledger_for(settings)
        self._selector: ModelSelector | None = None
        self._served: Target | None = None  # what the classifier workers load
        self._waiting_for: str | None = None  # why no classifier runs yet
        self._unavailable: Target | None = None  # a choice not (yet) loadable, while another model is served

    def _on_signal(self, signum: int, _frame: object) -> None:
        logger.info("Received %s: stopping workers", signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        instance = claim_instance(self.settings.state_dir, self.settings.consumer_group)
        classify: WorkerRole = "classify"
        stats: WorkerRole = "stats"
        roles = [classify] * self._classifier_workers + [stats] * self._statistics
        slots: dict[WorkerRole, int] = {"classify": 0, "stats": 0}
        for role in roles:
            identity = WorkerIdentity(instance.name, role, slots[role])
            slots[role] += 1
            self.workers.append(Worker(identity, WorkerFiles(self.settings.state_dir, identity)))
        publisher = StatusPublisher(self.settings)
        self._selector = ModelSelector(self.settings, ChoiceReader(self.settings) if self._classifier_workers else None)
        started_at = time.time()
        logger.info(
            "Supervisor %s: %d classifier worker(s)%s",
            instance.name,
            self._classifier_workers,
            " and the statistics worker" if self._statistics else "",
        )
        try:
            next_status = 0.0
            while not self._stopping:
                changed = self._tend()
                if changed or time.monotonic() >= next_status:
                    publisher.publish(self._status(instance.name, started_at))
                    next_status = time.monotonic() + self.settings.status_interval_seconds
                time.sleep(0.2)
            self._stop_all()
            publisher.publish(self._status(instance.name, started_at))
        finally:
            publisher.close()
            self._selector.close()
            instance.release()
        return 0

    # --- keeping the workers running -----------------------------------------------------------------

    def _tend(self) -> bool:
        """Notice exits, follow the model to serve and start what is due; True if anything changed."""
        changed = self._follow_model()
        now = time.monotonic()
        for worker in self.workers:
            code = worker.process.poll() if worker.process else None
            if worker.process is not None and code is not None:
                self._on_exit(worker, code, now)
                changed = True
            if worker.role == "classify" and self._served is None:
                continue  # no model yet: the posts wait in Kafka
            if worker.process is None and now >= worker.restart_at:
                self._start(worker)
                changed = True
        return changed

    def _follow_model(self) -> bool:
        """Serve the model to serve; True if that changed."""
        if self._selector is None or not self._classifier_workers:
            return False
        target = self._selector.target()
        if target.model is None:
            if self._served is None:
                if target.waiting_for != self._waiting_for:
                    logger.info("Waiting for a model: %s; posts wait in Kafka meanwhile", target.waiting_for)
                    self._waiting_for = target.waiting_for
                    return True
            elif target != self._unavailable:
                logger.warning("%s; still serving %s", target.waiting_for, self._served.model)
                self._unavailable = target
            return False
        self._unavailable = None
        served = self._served
        if served is not None and (target.model, target.version, target.export) == (
            served.model,
            served.version,
            served.export,
        ):
            return False
        if served is None:
            logger.info("Serving model %s (version %s)", target.model, target.version)
        elif (target.model, target.version) == (served.model, served.version):
            logger.info(
                "The ONNX export of %s changed (checked %s); the classifiers reload the model after their next "
                "checkpoint",
                target.model,
                target.export or "never: removed",
            )
        else:
            logger.info(
                "Switching model: %s (version %s) -> %s (version %s); the classifiers stop at their next checkpoint",
                served.model,
                served.version,
                target.model,
                target.version,
            )
        if served is not None:
            self._stop([worker for worker in self.workers if worker.role == "classify"])
        self._served, self._waiting_for = target, None
        for worker in self.workers:
            if worker.role == "classify":
                worker.restart_at = 0.0  # a switch is no crash: start at once
        return True

    def _start(self, worker: Worker) -> None:
        worker.files.in_flight.take()  # left by a process of an earlier supervisor: not this one's to count
        worker.files.take_crash_report()
        environment = None
        if worker.role == "classify" and self._served is not None and self._served.model is not None:
            environment = {
                **os.environ,
                "SENTISTREAM_MODEL": self._served.model,
                # The cores shared among the classifiers, unless set: more threads than cores only contend.
                "SENTISTREAM_TORCH_THREADS": str(self.settings.worker_threads(self._classifier_workers)),
            }
        worker.process = subprocess.Popen(worker.command(), env=environment)
        worker.started_at = time.monotonic()
        logger.info(
            "Started %s worker %d (pid %d)%s",
            worker.role,
            worker.identity.slot,
            worker.process.pid,
            " in careful mode" if worker.careful else "",
        )

    def _on_exit(self, worker: Worker, code: int, now: float) -> None:
        assert worker.process is not None
        pid, was_careful = worker.process.pid, worker.careful
        worker.process = None
        report = worker.files.take_crash_report()
        in_flight = worker.files.in_flight.take()
        if code == 0 and was_careful:
            logger.info("%s worker %d (pid %d) finished careful mode", worker.role, worker.identity.slot, pid)
            worker.careful, worker.restart_at = False, now
            return
        if code == STATE_RESET_EXIT_CODE:
            worker.state_resets += 1
            logger.warning(
                "%s worker %d (pid %d) dropped its local state to restore it from the changelog (%d so far)",
                worker.role,
                worker.identity.slot,
                pid,
                worker.state_resets,
            )
            worker.restart_at = now
            return

        worker.last_exit = describe_exit(code)
        worker.last_error = report["error"] if report else None  # a process killed by a signal says nothing
        worker.last_error_at = time.time()
        if now - worker.started_at > HEALTHY_RUN_SECONDS:
            worker.backoff_step = 0
        delay = RESTART_BACKOFF_SECONDS[min(worker.backoff_step, len(RESTART_BACKOFF_SECONDS) - 1)]
        worker.backoff_step += 1
        worker.restart_at = now + delay
        worker.restarts.append(now)
        worker.restarts_total += 1
        why = worker.last_exit if worker.last_error is None else f"{worker.last_exit}: {worker.last_error}"
        logger.warning(
            "%s worker %d (pid %d) ended, %s; restarting in %d s", worker.role, worker.identity.slot, pid, why, delay
        )
        if worker.role == "classify" and self._may_be_data(code, report):
            self._count_crash(worker, in_flight)
            worker.careful = True

    def _may_be_data(self, code: int, report: dict[str, Any] | None) -> bool:
        if code == STUCK_EXIT_CODE or (code < 0 and -code in _OUTSIDE_SIGNALS):
            return False
        return not (report and report.get("infrastructure"))

    def _count_crash(self, worker: Worker, in_flight: list[str]) -> None:
        """Count the crash against what the worker was processing: a batch, or in careful mode one message."""
        cause = worker.last_error or worker.last_exit or "unknown"
        limit = self.settings.poison_crash_limit
        crashes = {message: self._ledger.record_crash(message, cause) for message in in_flight}
        if len(crashes) > 1:
            logger.warning(
                "The crash is counted against the %d messages of the batch being scored (%s ... %s); "
                "careful mode will find which one it was",
                len(crashes),
                in_flight[0],
                in_flight[-1],
            )
        for message, count in crashes.items():
            if count >= limit:
                worker.poisoned += 1
                logger.error(
                    "%s crashed a worker %d times: the next worker dead-letters it (poison_message)", message, count
                )
            elif len(crashes) == 1:
                logger.warning("%s crashed a worker (%d of %d before it is set aside)", message, count, limit)
        if len(crashes) == 1:
            worker.stuck_at = in_flight[0]

    # --- reporting ----------------------------------------------------------------------------------

    def _worker_status(self, worker: Worker, now: float) -> WorkerStatus:
        window = self.settings.crash_loop_window_seconds
        while worker.restarts and now - worker.restarts[0] > window:
            worker.restarts.popleft()
        settled = worker.process is not None and now - worker.started_at >= HEALTHY_RUN_SECONDS
        if self._stopping and worker.process is None:
            state = WorkerState.STOPPED
        elif worker.role == "classify" and self._served is None:
            state = WorkerState.WAITING
        elif len(worker.restarts) >= self.settings.crash_loop_restarts and not settled:
            state = WorkerState.CRASH_LOOPING
        elif worker.process is None:
            state = WorkerState.RESTARTING
        else:
            state = WorkerState.RUNNING
        return WorkerStatus(
            slot=worker.identity.slot,
            role=worker.role,
            state=state,
            pid=worker.process.pid if worker.process else None,
            restarts=len(worker.restarts),
            restarts_total=worker.restarts_total,
            last_exit=worker.last_exit,
            last_error=worker.last_error,
            last_error_at=worker.last_error_at,
            careful=worker.careful,
            stuck_at=worker.stuck_at,
            poisoned=worker.poisoned,
            state_resets=worker.state_resets,
        )

    def _status(self, instance: str, started_at: float) -> PipelineStatus:
        now = time.monotonic()
        return PipelineStatus(
            instance=instance,
            host=socket.gethostname(),
            pid=os.getpid(),
            consumer_group=self.settings.consumer_group,
            started_at=started_at,
            sent_at=time.time(),
            interval_seconds=self.settings.status_interval_seconds,
            stopping=self._stopping,
            workers=[self._worker_status(worker, now) for worker in self.workers],
            model=self._served.model if self._served is not None else None,
            model_version=self._served.version if self._served is not None else None,
            waiting_for_model=self._waiting_for if self._served is None else None,
        )

    def _stop_all(self, timeout: float = 30.0) -> None:
        self._stop(self.workers, timeout)

    def _stop(self, workers: list[Worker], timeout: float = 30.0) -> None:
        """Stop ``workers`` cleanly (SIGTERM: each commits its last checkpoint and leaves the group)."""
        running = [w.process for w in workers if w.process and w.process.poll() is None]
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
        for worker in workers:
            worker.process = None
            worker.files.take_crash_report()
            worker.files.in_flight.take()
