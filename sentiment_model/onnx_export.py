"""Export a model's encoder to ONNX (fp32 and int8) and check every runtime on the held-out test set.

    python -m sentiment_model.onnx_export [MODEL] [--force] [--threads N] [--speed-texts N]

MODEL is a model's name in the models folder, a ``.pt`` path or ``auto`` (the default: ``SENTISTREAM_MODEL``).
The build runs the same export for every model it makes, before it writes the model's card, so a worker finds
the files there from the start; this command is for models built before, or built elsewhere. It does nothing when
the export of this very model file (same SHA-256) is there already, unless ``--force``.

The steps, each logged and on a progress bar: export the encoder (the TorchScript exporter: see
``sentiment_model.onnx_encoder``); optimise the graph with ONNX Runtime's transformer fusions (attention, layer
norm, GELU) into ``fp32.onnx``; quantise that graph's weights to int8 (dynamic quantisation, one scale per output
channel) into ``int8.onnx``; then score the held-out test set with torch, onnx and onnx-int8, and measure each
one's speed. ``onnx`` passes when it gives torch's label to at least 99.5 % of the texts, ``onnx-int8`` when its
macro-F1 is within 0.01 of torch's (``sentiment_model.runtimes``). The figures go to ``<name>.runtimes.json``
(written last, and read by the workers) and into the model's card.
"""

from __future__ import annotations

import os

# As in sentiment_model.build: before anything imports huggingface_hub or torch.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import fcntl
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from common.logs import configure_logging
from common.settings import get_settings
from sentiment_model import datasets, registry, runtimes
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.datasets import Example
from sentiment_model.evaluation import measure_speeds, predicted_labels, scores
from sentiment_model.runtimes import ONNX, ONNX_FILES, ONNX_INT8, TORCH, RuntimeCheck, Validation

logger = logging.getLogger(__name__)

# Each step's share of the whole, for the progress bar (measured on the full model: the checks dominate).
STEPS = {
    "exporting": 0.05,
    "optimising": 0.05,
    "quantising": 0.05,
    f"checking {TORCH}": 0.25,
    f"checking {ONNX}": 0.25,
    f"checking {ONNX_INT8}": 0.15,
    "measuring speed": 0.20,
}
SPEED_TEXTS = 256


class NotExportable(RuntimeError):
    """The model's embeddings are not a transformer encoder Flair can export."""


@contextlib.contextmanager
def _export_lock(model_file: Path) -> Iterator[None]:
    """One export of a model at a time (the build's and this command's); a second one waits for the first."""
    folder = runtimes.exports_dir(model_file)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "export.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _Steps:
    """The overall fraction done, from the step under way and how far it is."""

    def __init__(self, progress: Callable[[float], None] | None):
        self._progress = progress or (lambda _done: None)
        self._done = 0.0
        self._step = ""

    def start(self, step: str) -> Callable[[float], None]:
        self._done += STEPS.get(self._step, 0.0)
        self._step = step
        logger.info("ONNX export: %s", step)
        self._progress(self._done)
        return lambda fraction: self._progress(self._done + STEPS[step] * fraction)

    def finish(self) -> None:
        self._progress(1.0)


def held_out_test(model_file: Path) -> list[Example]:
    """The test examples the model's card was evaluated on (all of the test split for a model without a card)."""
    card = registry.read_card(model_file) or {}
    limit = (card.get("config") or {}).get("max_test")
    return datasets.sample(datasets.load_splits().test, limit)


def _examples_for_tracing(test: Sequence[Example]) -> list[str]:
    """A short, a middling and a long text: the export traces the encoder on them."""
    by_length = sorted((e.text for e in test), key=len)
    return [by_length[0], by_length[len(by_length) // 2], by_length[-1]]


def _optimise(exported: Path, out: Path, encoder_config: object) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(exported),
        model_type="bert",
        num_heads=getattr(encoder_config, "num_attention_heads", 0),
        hidden_size=getattr(encoder_config, "hidden_size", 0),
    )
    logger.info("ONNX export: fused %s", {op: n for op, n in model.get_fused_operator_statistics().items() if n})
    model.save_model_to_file(str(out))


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantiser logs a line per tensor through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quantise(fp32: Path, out: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # One scale per output channel keeps the small-valued channels apart (docs/benchmarks/tuning.md, section 5).
    # The fused operators are ONNX Runtime's own, which ONNX's shape inference does not know: their outputs are
    # float.
    with _quiet_root_logger():
        quantize_dynamic(
            fp32,
            out,
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


def _check(
    runtime: str,
    classifier: SentimentClassifier,
    test: Sequence[Example],
    reference: list[str] | None,
    reference_f1: float | None,
    progress: Callable[[float], None],
    file: str | None = None,
) -> tuple[RuntimeCheck, list[str]]:
    """One runtime's check: its figures on ``test`` against torch's labels (``reference``) and macro-F1 (its speed
    is measured later, with the others')."""
    predicted = predicted_labels(classifier, [e.text for e in test], progress=progress)
    figures = scores(test, predicted)
    agreement = 1.0 if reference is None else sum(a == b for a, b in zip(predicted, reference, strict=True)) / len(test)
    macro_f1 = figures["macro_f1"]
    if runtime == TORCH or reference_f1 is None:
        passed, reason = True, "the reference"
    elif runtime == ONNX:
        passed = agreement >= runtimes.MIN_LABEL_AGREEMENT
        reason = (
            f"{agreement:.2%} of labels as torch's "
            f"({'at least' if passed else 'below'} {runtimes.MIN_LABEL_AGREEMENT:.1%})"
        )
    else:
        drop = reference_f1 - macro_f1
        passed = drop <= runtimes.MAX_MACRO_F1_DROP
        reason = (
            f"macro-F1 {macro_f1:.4f} against torch's {reference_f1:.4f} "
            f"({'within' if passed else 'more than'} {runtimes.MAX_MACRO_F1_DROP} below)"
        )
    check = RuntimeCheck(
        runtime=runtime,
        passed=passed,
        reason=reason,
        accuracy=figures["accuracy"],
        macro_f1=macro_f1,
        label_agreement=round(agreement, 4),
        speed={},
        file=file,
    )
    logger.info(
        "ONNX export: %s %s: accuracy %.4f, macro-F1 %.4f, %.2f%% of labels as torch's; %s",
        runtime,
        "passed" if passed else "FAILED",
        check.accuracy,
        check.macro_f1,
        100 * agreement,
        reason,
    )
    return check, predicted


def export_runtimes(
    model_file: Path,
    test: Sequence[Example] | None = None,
    threads: int = 2,
    speed_texts: int = SPEED_TEXTS,
    force: bool = False,
    progress: Callable[[float], None] | None = None,
    source: Path | None = None,
) -> Validation:
    """Export ``model_file``'s encoder, check every runtime on ``test`` (default: :func:`held_out_test`) and write
    the validation beside the model; the validation already there if it is of this very file (unless ``force``).
    ``source``: where the model file's content is while it is not at ``model_file`` yet (a build writes aside).

    Raises :class:`NotExportable` for a model without a transformer encoder.
    """
    import onnxruntime

    from sentiment_model.onnx_encoder import export, is_exportable

    model_file = Path(model_file)
    source = Path(source or model_file)
    with _export_lock(model_file):
        sha256 = runtimes.file_sha256(source)
        current = None if force else runtimes.current_validation(model_file, sha256)
        if current is not None:
            logger.info("%s: the ONNX export of this build is there already (--force exports again)", model_file.name)
            return current
        steps = _Steps(progress)
        test = list(test) if test is not None else held_out_test(model_file)
        target = runtimes.export_dir(model_file, sha256)
        work = target.with_name(target.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            reference = SentimentClassifier.load(str(source), threads)
            if not is_exportable(reference.encoder):
                raise NotExportable(
                    f"{model_file.name}: its embeddings ({type(reference.encoder).__name__}) are not a transformer "
                    "encoder; it runs on torch"
                )
            steps.start("exporting")
            export(reference.encoder, work / "exported.onnx", _examples_for_tracing(test))
            steps.start("optimising")
            _optimise(work / "exported.onnx", work / ONNX_FILES[ONNX], reference.encoder.model.config)
            (work / "exported.onnx").unlink()
            steps.start("quantising")
            _quantise(work / ONNX_FILES[ONNX], work / ONNX_FILES[ONNX_INT8])

            torch_check, torch_labels = _check(TORCH, reference, test, None, None, steps.start(f"checking {TORCH}"))
            classifiers = {TORCH: reference}
            checks = {TORCH: torch_check}
            for runtime in (ONNX, ONNX_INT8):
                classifiers[runtime] = SentimentClassifier.load_onnx(
                    source, runtime, work / ONNX_FILES[runtime], threads
                )
                checks[runtime], _ = _check(
                    runtime,
                    classifiers[runtime],
                    test,
                    torch_labels,
                    torch_check.macro_f1,
                    steps.start(f"checking {runtime}"),
                    file=str(target.relative_to(model_file.parent) / ONNX_FILES[runtime]),
                )
            if speed_texts:
                steps.start("measuring speed")
                speeds = measure_speeds(classifiers, [e.text for e in test[:speed_texts]])
                checks = {
                    runtime: check.model_copy(update={"speed": speeds[runtime]}) for runtime, check in checks.items()
                }
                logger.info("ONNX export: sentences/s %s", speeds)
            del classifiers, reference
            shutil.rmtree(target, ignore_errors=True)
            work.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for old in runtimes.exports_dir(model_file).iterdir():
            if old.is_dir() and old != target:
                shutil.rmtree(old, ignore_errors=True)  # exports of earlier builds of this model file
        validation = Validation(
            model_file=model_file.name,
            model_sha256=sha256,
            exported_at=time.time(),
            onnxruntime=onnxruntime.__version__,
            threads=threads,
            test_size=len(test),
            checks=checks,
        )
        runtimes.write_validation(model_file, validation)
        steps.finish()
        return validation


def record_on_card(model_file: Path, validation: Validation) -> None:
    """Put the runtimes' figures into the model's card (replaced at once), for the Models page and ``make
    model-card``."""
    card = registry.read_card(model_file)
    if card is None:
        return
    card["runtimes"] = validation.model_dump()
    target = registry.card_path(model_file)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(card, indent=2) + "\n")
    partial.replace(target)


def summary(validation: Validation, models_dir: Path) -> str:
    fastest = validation.fastest(models_dir)
    lines = [f"{'runtime':<10} {'passed':<7} {'accuracy':>8} {'macro-F1':>8} {'as torch':>8} {'sent/s @32':>10}"]
    for check in validation.checks.values():
        lines.append(
            f"{check.runtime:<10} {'yes' if check.passed else 'NO':<7} {check.accuracy:>8.4f} {check.macro_f1:>8.4f} "
            f"{check.label_agreement:>8.2%} {check.speed.get('batch_32', float('nan')):>10.1f}  {check.reason}"
        )
    lines.append(f"auto serves: {fastest.runtime if fastest else TORCH}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment_model.onnx_export", description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="a model name in the models folder, a .pt path, or auto")
    parser.add_argument("--force", action="store_true", help="export again even if this build is exported")
    parser.add_argument("--threads", type=int, help="threads of every runtime (default: SENTISTREAM_TORCH_THREADS)")
    parser.add_argument(
        "--speed-texts", type=int, default=SPEED_TEXTS, help="test texts each runtime's speed is measured on"
    )
    args = parser.parse_args(argv)
    configure_logging()
    settings = get_settings()
    spec = args.model or settings.model
    resolved = registry.resolve(spec, settings.models_dir)
    if resolved is None or not resolved.endswith(".pt"):
        logger.error("%r is no built .pt model here (built: %s)", spec, registry.built_models(settings.models_dir))
        return registry.EXIT_FAILED
    model_file = Path(resolved)
    with tqdm(
        total=100, desc=f"ONNX export of {model_file.stem}", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}"
    ) as bar:

        def advance(done: float) -> None:
            bar.n = round(100 * done, 1)
            bar.refresh()

        try:
            validation = export_runtimes(
                model_file,
                threads=args.threads or settings.worker_threads(),
                speed_texts=args.speed_texts,
                force=args.force,
                progress=advance,
            )
        except NotExportable as exc:
            logger.error("%s", exc)
            return registry.EXIT_FAILED
    record_on_card(model_file, validation)
    print(summary(validation, model_file.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
