"""One pipeline process: a classifier worker (a member of the consumer group) or the statistics worker.

A worker that dies of an exception leaves a crash report for its supervisor: what it died of, and
whether that was the infrastructure (Kafka, memory, the model file), which no message causes, or
possibly data, which sends the next worker of its slot into careful mode (``pipeline.poison``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError
from quixstreams.state.exceptions import InvalidStoreChangelogOffset

from common.settings import Settings
from pipeline.application import classifier_application, statistics_application, statistics_state_dir
from pipeline.classifier_sink import BatchClassifier, is_out_of_memory
from pipeline.instance import WorkerIdentity
from pipeline.model_choice import target_for
from pipeline.poison import InFlight, Ledger, PoisonGate
from pipeline.watchdog import watch_transactions

logger = logging.getLogger(__name__)

# Exit codes a supervisor reads (besides 0, a clean stop, and 1, a crash with a report).
STATE_RESET_EXIT_CODE = 76  # statistics: local state dropped, restart to restore it from the changelog
# Careful mode ends after this many seconds without a message: there is no backlog left to be careful with.
CAREFUL_IDLE_SECONDS = 5.0
# Kafka errors a message itself can cause; any other Kafka error is the infrastructure's.
_DATA_ERROR_CODES = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD,
}


class WorkerFiles:
    """What a worker leaves for its supervisor in the state directory."""

    def __init__(self, state_dir: Path, identity: WorkerIdentity):
        self.directory = state_dir / "workers" / f"{identity.instance}-{identity.role}-{identity.slot}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.in_flight = InFlight(self.directory / "in-flight")
        self._crash_report = self.directory / "crash.json"

    def write_crash_report(self, error: BaseException) -> None:
        report = {
            "error": f"{type(error).__name__}: {error}"[:1000],
            "infrastructure": is_infrastructure(error),
            "at": time.time(),
        }
        self._crash_report.write_text(json.dumps(report))

    def take_crash_report(self) -> dict[str, Any] | None:
        try:
            report = json.loads(self._crash_report.read_text())
        except (FileNotFoundError, ValueError):
            return None
        finally:
            self._crash_report.unlink(missing_ok=True)
        return report if isinstance(report, dict) else None


def is_infrastructure(error: BaseException) -> bool:
    """True for failures no message causes: Kafka (unless about a message's size or form), memory, the model."""
    model = sys.modules.get("sentiment_model.classifier")  # loaded only in classifier workers (torch)
    if is_out_of_memory(error) or (
        model is not None and isinstance(error, (model.ModelNotFound, model.ModelUnavailable))
    ):
        return True
    kafka_error = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
    return kafka_error is not None and kafka_error.code() not in _DATA_ERROR_CODES


def ledger_for(settings: Settings) -> Ledger:
    return Ledger(settings.state_dir / "poison" / f"{settings.consumer_group}.json")


def run_classifier(settings: Settings, identity: WorkerIdentity, careful: bool) -> None:
    # torch/flair: only this process kind pays for them
    from sentiment_model.classifier import ModelNotFound, SentimentClassifier

    # Under a supervisor the model is resolved already; a worker run on its own resolves its spec itself.
    model = target_for(settings.model, settings.models_dir)
    if model.model is None:
        raise ModelNotFound(str(model.waiting_for))
    # The runtime's ONNX files were exported and checked by the build (or `python -m sentiment_model.onnx_export`);
    # without them the model runs on torch, and the log says why: a worker never exports.
    classifier = SentimentClassifier.load(
        model.model, settings.worker_threads(), quantize=settings.model_quantize, runtime=settings.model_runtime
    )
    files = WorkerFiles(settings.state_dir, identity)
    if settings.processing_guarantee == "exactly-once":
        watch_transactions(settings.transaction_stall_seconds)
    if careful:
        _run_carefully(settings, classifier, files, identity.member)
        return
    logger.info(
        "Classifier worker %d: model %s on %s with %d thread(s), batch %d, max wait %d ms, %s",
        os.getpid(),
        classifier.name,
        classifier.runtime,
        settings.worker_threads(),
        settings.batch_size,
        settings.batch_max_wait_ms,
        settings.processing_guarantee,
    )
    gate = PoisonGate(ledger_for(settings), settings.poison_crash_limit)
    classifier_application(settings, classifier, identity.member, gate, files.in_flight).run()


def _run_carefully(settings: Settings, classifier: BatchClassifier, files: WorkerFiles, member: str) -> None:
    """One message per checkpoint, each noted in flight, for as many messages as a crashed checkpoint can
    hold; then exit, and the supervisor starts the worker again in batches."""
    budget = settings.batch_size * settings.posts_partitions
    processed = itertools.count(1)
    logger.warning(
        "Classifier worker %d in careful mode after a crash: the next %d messages one at a time", os.getpid(), budget
    )

    def count(_topic: str, _partition: int, _offset: int) -> None:
        if next(processed) >= budget:
            app.stop()

    gate = PoisonGate(ledger_for(settings), settings.poison_crash_limit, files.in_flight)
    # The gate notes each message in flight before it is processed (validation, scoring and commit alike).
    app = classifier_application(
        settings, classifier, member, gate, on_message_processed=count, one_message_per_checkpoint=True
    )
    app.run(timeout=CAREFUL_IDLE_SECONDS, collect=False)
    files.in_flight.take()  # it ended cleanly: nothing was left half done
    logger.info("Careful mode over")


def run_statistics(settings: Settings, identity: WorkerIdentity, careful: bool) -> None:
    logger.info("Statistics worker %d: %d s windows", os.getpid(), settings.stats_window_seconds)
    if settings.processing_guarantee == "exactly-once":
        watch_transactions(settings.transaction_stall_seconds)
    try:
        statistics_application(settings, identity.member).run()
    except InvalidStoreChangelogOffset as error:
        # The local windows are ahead of their changelog (seen after every Kafka node was killed at once):
        # the changelog is the truth. Drop the local copy; the next process restores it from there.
        state = statistics_state_dir(settings)
        logger.warning("Statistics state out of step with its changelog (%s); dropping %s to restore it", error, state)
        shutil.rmtree(state, ignore_errors=True)
        sys.exit(STATE_RESET_EXIT_CODE)


ROLES = {"classify": run_classifier, "stats": run_statistics}
