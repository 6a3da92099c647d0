"""``python -m bench.onnx_session [MODEL]``: how to lay out ONNX Runtime on the cores, measured on the encoder alone.

For each ONNX runtime of the model's checked export (``fp32``, ``int8``): posts/s of ``session.run`` over the
benchmark's posts prepared as a worker prepares them (Flair's tokenizer, then the model's sub-word tokenizer; each
call of 128 posts sorted by length and cut into forward passes), by intra-op threads (1, 2), idle threads spinning
or not, and forward-pass size; then the same with as many single-thread sessions as cores, each in its own process
and all at once (the layout of that many workers with one thread each). Text preparation is left out: it is the
same work in every layout (``docs/benchmarks/tuning.md`` measures it).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.model_throughput import sample_texts
from common.settings import PROJECT_ROOT, get_settings
from sentiment_model import registry, runtimes

POSTS, CALL = 1024, 128
PASS_SIZES = (8, 16, 32)
ROUNDS = 3


@functools.cache
def _words_and_tokenizer(model_file: Path) -> tuple[list[list[str]], Any]:
    from flair.data import Sentence
    from flair.models import TextClassifier

    tokenizer = TextClassifier.load(model_file).embeddings.tokenizer
    return [[token.text for token in Sentence(text)] for text in sample_texts(POSTS)], tokenizer


def _feeds(model_file: Path, pass_size: int) -> list[dict[str, Any]]:
    import numpy as np

    words, tokenizer = _words_and_tokenizer(model_file)
    feeds = []
    for start in range(0, POSTS, CALL):
        call = sorted(words[start : start + CALL], key=len)
        for first in range(0, len(call), pass_size):
            encoded = tokenizer(
                call[first : first + pass_size],
                is_split_into_words=True,
                padding="longest",
                truncation=True,
                return_tensors="np",
            )
            ids = encoded["input_ids"].astype(np.int64)
            feeds.append(
                {
                    "input_ids": ids,
                    "attention_mask": encoded["attention_mask"].astype(np.int64),
                    "sub_token_lengths": (ids != tokenizer.pad_token_id).sum(axis=1).astype(np.int64),
                }
            )
    return feeds


def posts_per_second(onnx_file: Path, feeds: list[dict[str, Any]], threads: int, spin: bool) -> float:
    """The best of ``ROUNDS`` passes over every feed."""
    from sentiment_model.onnx_encoder import new_session

    session = new_session(str(onnx_file), threads, spin)
    names = {i.name for i in session.get_inputs()}
    feeds = [{name: value for name, value in feed.items() if name in names} for feed in feeds]
    session.run(None, feeds[0])  # warm-up
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for feed in feeds:
            session.run(None, feed)
        best = min(best, time.perf_counter() - started)
    return POSTS / best


def _child(model_file: Path, onnx_file: Path, pass_size: int, start_at: float) -> None:
    feeds = _feeds(model_file, pass_size)
    time.sleep(max(0.0, start_at - time.time()))  # every process starts measuring at once
    print(json.dumps(posts_per_second(onnx_file, feeds, 1, False)))


def concurrent(model_file: Path, onnx_file: Path, pass_size: int, processes: int) -> list[float]:
    """Posts/s of each of ``processes`` single-thread sessions running at once, one per process."""
    start_at = time.time() + 30  # after every child has loaded the model and prepared its feeds
    command = [sys.executable, "-m", "bench.onnx_session", str(model_file), "--child", str(onnx_file)]
    children = [
        subprocess.Popen([*command, str(pass_size), str(start_at)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    return [float(child.communicate(timeout=600)[0].strip().splitlines()[-1]) for child in children]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.onnx_session", description=__doc__)
    parser.add_argument("model", nargs="?", help="model spec (default: SENTISTREAM_MODEL)")
    parser.add_argument("--child", nargs=3, metavar=("ONNX_FILE", "PASS_SIZE", "START_AT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = get_settings()
    resolved = registry.resolve(args.model or settings.model, settings.models_dir)
    if resolved is None or not resolved.endswith(".pt"):
        parser.error(f"{args.model or settings.model!r} is no built .pt model")
    model_file = Path(resolved)
    if args.child:
        _child(model_file, Path(args.child[0]), int(args.child[1]), float(args.child[2]))
        return 0
    validation = runtimes.current_validation(model_file)
    if validation is None:
        parser.error(f"{model_file} has no current ONNX export (python -m sentiment_model.onnx_export {model_file})")
    cores = os.cpu_count() or 1
    for check in validation.passed(model_file.parent):
        if check.file is None:
            continue
        onnx_file = model_file.parent / check.file
        for threads in sorted({1, cores}):
            for spin in (False, True):
                rates = [posts_per_second(onnx_file, _feeds(model_file, size), threads, spin) for size in PASS_SIZES]
                print(
                    f"{check.runtime}: 1 session x {threads} thread(s), spinning {'on' if spin else 'off'}: "
                    + ", ".join(f"{size} per pass {rate:.0f}" for size, rate in zip(PASS_SIZES, rates, strict=True))
                    + " posts/s",
                    flush=True,
                )
        if cores > 1:
            for size in PASS_SIZES:
                rates = concurrent(model_file, onnx_file, size, cores)
                print(
                    f"{check.runtime}: {cores} sessions x 1 thread at once, {size} per pass: {sum(rates):.0f} posts/s "
                    f"({' + '.join(f'{rate:.0f}' for rate in rates)})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
