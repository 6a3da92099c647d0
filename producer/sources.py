"""Where posts come from: the shipped sample, a generator, or a user's CSV/JSONL file.

Every source is an iterator of :class:`Post`, created lazily, so a replayed post gets its fresh id
and ``created_at`` at the moment the producer asks for it, i.e. at send time.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import pandas as pd
from pydantic import ValidationError

from common.contract import Post
from common.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_DATASET = PROJECT_ROOT / "data" / "sample_posts.jsonl"
FileFormat = Literal["csv", "jsonl"]

# Posts from a file without an author column are spread over this many anonymous keys, so that
# they still use every partition of the topic (the key is the author).
ANONYMOUS_AUTHORS = 64
DEFAULT_FILE_SOURCE = "upload"


def _replay(posts: Sequence[Post], loop: bool) -> Iterator[Post]:
    while True:
        for post in posts:
            # model_copy skips re-validation: the templates were validated once, on loading.
            yield post.model_copy(update={"id": uuid.uuid4().hex, "created_at": time.time()})
        if not loop:
            return


def dataset_posts(path: Path | str = DEFAULT_DATASET, loop: bool = True) -> Iterator[Post]:
    """Replay the shipped sample (``data/sample_posts.jsonl``), forever when ``loop``."""
    with Path(path).open(encoding="utf-8") as lines:
        posts = [Post.model_validate(json.loads(line)) for line in lines if line.strip()]
    if not posts:
        raise ValueError(f"{path} holds no posts")
    return _replay(posts, loop)


# --- synthetic ----------------------------------------------------------------------------------

_SUBJECTS = (
    "the new phone", "my flight", "the update", "this coffee shop", "the match", "the concert",
    "customer support", "the train", "the movie", "the city council", "my order", "the new album",
    "the keynote", "the hotel", "the game patch", "the delivery", "this podcast", "the election debate",
)
_WORDS = {
    "positive": (
        "amazing", "fantastic", "brilliant", "a delight", "super helpful", "better than expected",
        "wonderful", "so much fun", "excellent", "really impressive",
    ),
    "neutral": (
        "scheduled for Tuesday", "about what you would expect", "available in three colours",
        "moving to a new address", "on the agenda", "listed on the website", "starting at 8pm",
        "under review", "in the news today", "similar to last year",
    ),
    "negative": (
        "terrible", "a total mess", "so disappointing", "broken again", "a waste of money",
        "painfully slow", "awful", "frustrating", "worse than ever", "a complete disaster",
    ),
}
_TEMPLATES = {
    "positive": ("{subject} is {word}! {tag}", "Honestly {subject} was {word} {emoji}", "Loving it: {subject} is {word}."),
    "neutral": ("{subject} is {word}. {tag}", "FYI {subject} is {word}", "Reading that {subject} is {word}."),
    "negative": ("{subject} is {word}. {tag}", "Ugh, {subject} was {word} {emoji}", "Why is {subject} always {word}?"),
}
_MIXED = ("{subject} was {good} but {other} was {bad}.", "Not sure: {subject} is {good}, {other} is {bad}.")
_TAGS = ("", "", "#monday", "#tech", "#travel", "#music", "#news", "#sports")
_EMOJI = {"positive": ("", ":)", "<3", "!!"), "negative": ("", ":(", "smh", "...")}
_SYNTHETIC_SOURCES = ("twitter", "twitter", "reddit", "mastodon", "news-comments")
_NAMES = ("alex", "sam", "jordan", "casey", "riley", "morgan", "quinn", "avery", "jamie", "taylor")


def synthetic_posts(seed: int | None = None) -> Iterator[Post]:
    """Endless generated posts: templated positive, neutral, negative and mixed sentences.

    With a seed, ids, authors, sources and texts are reproducible (``created_at`` is always now).
    """
    rng = random.Random(seed)
    authors = [f"{name}_{number:03d}" for name in _NAMES for number in rng.sample(range(1000), 20)]
    while True:
        mood = rng.choices(("positive", "neutral", "negative", "mixed"), weights=(3, 3, 3, 1))[0]
        subject, other = rng.sample(_SUBJECTS, 2)
        if mood == "mixed":
            text = rng.choice(_MIXED).format(
                subject=subject, other=other, good=rng.choice(_WORDS["positive"]), bad=rng.choice(_WORDS["negative"])
            )
        else:
            text = rng.choice(_TEMPLATES[mood]).format(
                subject=subject,
                word=rng.choice(_WORDS[mood]),
                tag=rng.choice(_TAGS),
                emoji=rng.choice(_EMOJI.get(mood, ("",))),
            )
        yield Post(
            id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            author=rng.choice(authors),
            source=rng.choice(_SYNTHETIC_SOURCES),
            text=text[0].upper() + text[1:].rstrip(),
        )


# --- user files ---------------------------------------------------------------------------------


def _file_format(rows: Path | str | BinaryIO, file_format: FileFormat | None) -> FileFormat:
    if file_format is not None:
        return file_format
    # Paths and uploaded files (Streamlit's UploadedFile has .name) tell it by their suffix.
    name = str(rows) if isinstance(rows, (str, Path)) else str(getattr(rows, "name", ""))
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {name or 'the file'!r}: pass file_format='csv' or 'jsonl'")


def _read_frame(rows: Path | str | BinaryIO, file_format: FileFormat) -> pd.DataFrame:
    if not isinstance(rows, (str, Path)):
        rows = io.BytesIO(rows.read())  # pandas wants a seekable file; uploads may not be
    if file_format == "csv":
        return pd.read_csv(rows, dtype=str, keep_default_na=False)
    return pd.read_json(rows, lines=True, dtype=False)


def _cell(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def file_posts(
    rows: Path | str | BinaryIO,
    text_column: str = "text",
    file_format: FileFormat | None = None,
    loop: bool = True,
) -> Iterator[Post]:
    """Replay the posts of a CSV or JSONL file (a path or a binary file-like object).

    ``text_column`` is required; ``author`` and ``source`` columns are used when present, otherwise
    (or when empty) the author is one of a few anonymous keys and the source is ``"upload"``.
    Rows without text, or that do not make a valid post, are skipped with a warning.
    """
    frame = _read_frame(rows, _file_format(rows, file_format))
    if text_column not in frame.columns:
        raise ValueError(f"column {text_column!r} not found; the file has columns: {', '.join(map(str, frame.columns))}")
    posts: list[Post] = []
    skipped: list[str] = []
    columns = {name: frame[name].tolist() if name in frame.columns else [None] * len(frame) for name in ("author", "source")}
    for index, (text, author, source) in enumerate(zip(frame[text_column].tolist(), columns["author"], columns["source"])):
        try:
            posts.append(
                Post(
                    author=_cell(author) or f"anonymous-{index % ANONYMOUS_AUTHORS:02d}",
                    source=_cell(source) or DEFAULT_FILE_SOURCE,
                    text=_cell(text),
                )
            )
        except ValidationError as exc:
            skipped.append(f"row {index + 1}: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    if skipped:
        logger.warning("Skipped %d of %d rows that make no valid post, e.g. %s", len(skipped), len(frame), skipped[0])
    if not posts:
        raise ValueError(f"no row of the file makes a valid post (column {text_column!r} is empty?)")
    return _replay(posts, loop)
