"""One pipeline process: a classifier worker (a member of the consumer group) or the statistics worker."""

from __future__ import annotations

import logging
import os

from common.settings import Settings
from pipeline.application import classifier_application, statistics_application
from pipeline.watchdog import watch_transactions

logger = logging.getLogger(__name__)


def run_classifier(settings: Settings) -> None:
    from sentiment_model.classifier import SentimentClassifier  # torch/flair: only this process kind pays for it

    classifier = SentimentClassifier.load(settings.model, settings.torch_threads, quantize=settings.model_quantize)
    logger.info("Classifier worker %d: model %s, batch %d, max wait %d ms, %s",
                os.getpid(), classifier.name, settings.batch_size, settings.batch_max_wait_ms, settings.processing_guarantee)
    if settings.processing_guarantee == "exactly-once":
        watch_transactions(settings.transaction_stall_seconds)
    classifier_application(settings, classifier).run()


def run_statistics(settings: Settings) -> None:
    logger.info("Statistics worker %d: %d s windows", os.getpid(), settings.stats_window_seconds)
    if settings.processing_guarantee == "exactly-once":
        watch_transactions(settings.transaction_stall_seconds)
    statistics_application(settings).run()


ROLES = {"classify": run_classifier, "stats": run_statistics}
