"""How good and how fast a loaded model is on held-out examples: the figures of model cards and runtime checks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from common.contract import LABELS
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.datasets import Example

EVALUATE_CHUNK = 256


def predicted_labels(
    classifier: SentimentClassifier,
    texts: Sequence[str],
    batch_size: int = 32,
    progress: Callable[[float], None] | None = None,
) -> list[str]:
    """The model's label for each text, in order."""
    # Shortest first, in chunks (for progress): as Flair would sort one call, so batches pad little.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predicted = [""] * len(texts)
    for start in range(0, len(order), EVALUATE_CHUNK):
        chunk = order[start : start + EVALUATE_CHUNK]
        for i, prediction in zip(
            chunk, classifier.predict([texts[i] for i in chunk], batch_size=batch_size), strict=True
        ):
            predicted[i] = prediction.label
        if progress is not None:
            progress(min(start + EVALUATE_CHUNK, len(order)) / len(order))
    return predicted


def scores(test: Sequence[Example], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro-F1 and confusion matrix (rows true, columns predicted)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    gold = [e.label for e in test]
    labels = list(LABELS)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    return {
        "test_size": len(test),
        "accuracy": round(sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(test), 4),
        "macro_f1": round(float(f1.mean()), 4),
        "per_class": {
            label: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": labels,
            "rows_true_columns_predicted": confusion_matrix(gold, predicted, labels=labels).tolist(),
        },
        "by_source_accuracy": {
            source: round(
                sum(g == p for g, p, e in zip(gold, predicted, test, strict=True) if e.source == source)
                / sum(1 for e in test if e.source == source),
                4,
            )
            for source in sorted({e.source for e in test})
        },
    }


def evaluate(
    classifier: SentimentClassifier,
    test: Sequence[Example],
    batch_size: int = 32,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """:func:`scores` of the model's predictions for ``test``."""
    return scores(test, predicted_labels(classifier, [e.text for e in test], batch_size, progress))


def measure_speeds(
    classifiers: dict[str, SentimentClassifier], texts: Sequence[str], rounds: int = 2
) -> dict[str, dict[str, float]]:
    """:func:`measure_speed` of each classifier, the best of ``rounds`` taken in turns: a load that comes and goes
    on the machine then slows each of them alike, and their order holds."""
    best: dict[str, dict[str, float]] = {name: {} for name in classifiers}
    for _ in range(rounds):
        for name, classifier in classifiers.items():
            for key, rate in measure_speed(classifier, texts).items():
                best[name][key] = max(rate, best[name].get(key, 0.0))
    return best


def measure_speed(classifier: SentimentClassifier, texts: Sequence[str]) -> dict[str, float]:
    """Sentences per second at batch sizes 1 and 32 (after one warm-up batch)."""
    speed = {}
    classifier.predict(texts[:32], batch_size=32)
    for batch_size in (1, 32):
        started = time.perf_counter()
        classifier.predict(texts, batch_size=batch_size)
        speed[f"batch_{batch_size}"] = round(len(texts) / (time.perf_counter() - started), 1)
    return speed
