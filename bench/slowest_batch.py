"""The slowest checkpoint a classifier worker can meet, and what it means for the group's time limits.

A checkpoint scores up to ``batch_size`` posts in one call while the worker does not poll Kafka, and under
exactly-once with its transaction open. So ``max.poll.interval.ms`` (past it the worker leaves its group)
and ``transaction.timeout.ms`` (past it the broker aborts the transaction) must both exceed the slowest
batch there can be: every post at ``max_text_chars`` of the costliest text for the tokenizer, on one
torch thread (two workers on two cores). Several kinds of text are tried; the slowest counts.
"""

from __future__ import annotations

import random
import time

# Each fills max_text_chars; they differ in how much work they make for Flair's tokenizer and the model.
TEXT_KINDS = {
    "words": lambda rng: " ".join(rng.choice(["love", "hate", "meh", "great", "awful", "ok"]) for _ in range(5000)),
    "one-letter tokens": lambda rng: " ".join(rng.choice("abcdefghij") for _ in range(5000)),
    "punctuation": lambda rng: "".join(rng.choice("!?.,;:()[]") for _ in range(10000)),
    "emoji and CJK": lambda rng: "".join(rng.choice("😀🔥🎉感情分析好悪") for _ in range(10000)),
}


def measure(
    model: str, batch_size: int, model_batch_size: int, max_text_chars: int, rounds: int = 2
) -> dict[str, object]:
    from sentiment_model.classifier import SentimentClassifier

    classifier = SentimentClassifier.load(model, torch_threads=1)
    rng = random.Random(7)
    seconds: dict[str, float] = {}
    for kind, make in TEXT_KINDS.items():
        texts = [make(rng)[:max_text_chars] for _ in range(batch_size)]
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            classifier.predict(texts, batch_size=model_batch_size)
            timings.append(time.perf_counter() - started)
        seconds[kind] = max(timings)
        print(
            f"  {batch_size} posts of {max_text_chars} characters ({kind}), 1 torch thread: {seconds[kind]:.1f} s",
            flush=True,
        )
    slowest = max(seconds, key=seconds.get)
    return {
        "model": classifier.name,
        "batch_size": batch_size,
        "max_text_chars": max_text_chars,
        "seconds": seconds,
        "slowest_kind": slowest,
        "slowest_seconds": seconds[slowest],
    }
