"""Where posts come from: the shipped sample, a generator, or a user's CSV, JSON Lines or JSON file.

Every source is an iterator of :class:`Post`, created lazily, so a replayed post gets its fresh id
and ``created_at`` at the moment the producer asks for it, i.e. at send time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO, Literal, TextIO

from pydantic import ValidationError

from common.contract import Post
from common.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_DATASET = PROJECT_ROOT / "data" / "sample_posts.jsonl"
FileFormat = Literal["csv", "jsonl", "json"]

# Posts from a file without an author column are spread over this many anonymous keys, so that
# they still use every partition of the topic (the key is the author).
ANONYMOUS_AUTHORS = 64
DEFAULT_FILE_SOURCE = "upload"


def replay(posts: Sequence[Post], loop: bool = True) -> Iterator[Post]:
    """The posts again and again (when ``loop``), each with a fresh id and ``created_at``."""
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
    return replay(posts, loop)


# --- synthetic ----------------------------------------------------------------------------------

_SUBJECTS = (
    "the new phone",
    "my flight",
    "the update",
    "this coffee shop",
    "the match",
    "the concert",
    "customer support",
    "the train",
    "the movie",
    "the city council",
    "my order",
    "the new album",
    "the keynote",
    "the hotel",
    "the game patch",
    "the delivery",
    "this podcast",
    "the election debate",
)
_WORDS = {
    "positive": (
        "amazing",
        "fantastic",
        "brilliant",
        "a delight",
        "super helpful",
        "better than expected",
        "wonderful",
        "so much fun",
        "excellent",
        "really impressive",
    ),
    "neutral": (
        "scheduled for Tuesday",
        "about what you would expect",
        "available in three colours",
        "moving to a new address",
        "on the agenda",
        "listed on the website",
        "starting at 8pm",
        "under review",
        "in the news today",
        "similar to last year",
    ),
    "negative": (
        "terrible",
        "a total mess",
        "so disappointing",
        "broken again",
        "a waste of money",
        "painfully slow",
        "awful",
        "frustrating",
        "worse than ever",
        "a complete disaster",
    ),
}
_TEMPLATES = {
    "positive": (
        "{subject} is {word}! {tag}",
        "Honestly {subject} was {word} {emoji}",
        "Loving it: {subject} is {word}.",
    ),
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

# The one place a file's format is told from its name.
FILE_FORMATS: dict[str, FileFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
READ_CHUNK = 64 * 1024
_BLANK = re.compile(r"[ \t\n\r]*")  # JSON's whitespace

# A record of a file: its fields, or why it is not a record (a line that is not a JSON object).
Row = dict[str, object] | str


class FileRejected(ValueError):
    """A file that cannot be read as posts; the message says why, for the person who chose it."""


@dataclass(frozen=True)
class FilePosts:
    posts: list[Post]
    rows: int  # records read, the skipped ones included
    skipped: list[
        str
    ]  # why each skipped record was skipped, e.g. "row 4: text: String should have at least 1 character"


def format_of(name: str) -> FileFormat:
    """A file's format by its suffix: .csv, .jsonl / .ndjson (one JSON object a line), .json (an array of objects)."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in FILE_FORMATS:
        raise FileRejected(f"cannot tell the format of {name!r}: name it .csv, .jsonl, .ndjson or .json")
    return FILE_FORMATS[suffix]


def _csv_rows(text: TextIO) -> Iterator[Row]:
    yield from csv.DictReader(text)


def _jsonl_rows(text: TextIO) -> Iterator[Row]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}: not JSON ({exc.msg})"
            continue
        yield row if isinstance(row, dict) else f"line {number}: not a JSON object"


def _json_rows(text: TextIO) -> Iterator[Row]:
    """The items of a JSON array, decoded one at a time: a large array never becomes one Python list."""
    decoder = json.JSONDecoder()
    buffer, at, ended = "", 0, False

    def read_more() -> bool:
        nonlocal buffer, at, ended
        # Reads grow with what is buffered, so that one huge item costs linear time, not quadratic.
        chunk = text.read(max(READ_CHUNK, len(buffer) - at))
        buffer, at, ended = buffer[at:] + chunk, 0, not chunk
        return not ended

    def next_char() -> str:  # the next non-blank character, not consumed; "" at the end
        nonlocal at
        while True:
            at = _BLANK.match(buffer, at).end()
            if at < len(buffer) or not read_more():
                return buffer[at : at + 1]

    if next_char() != "[":
        raise FileRejected(
            "a .json file must hold an array of objects, [{...}, {...}]; name a file of one object a line .jsonl"
        )
    at += 1
    if next_char() == "]":
        at += 1
    else:
        for number in itertools.count(1):
            next_char()
            while True:
                try:
                    item, end = decoder.raw_decode(buffer, at)
                except json.JSONDecodeError as exc:
                    if not read_more():
                        raise FileRejected(f"item {number} of the array is not valid JSON ({exc.msg})") from None
                    continue
                if end < len(buffer) or not read_more():  # a number ending with the buffer may go on
                    break
            at = end
            yield item if isinstance(item, dict) else f"item {number}: not a JSON object"
            separator = next_char()
            at += 1
            if separator == "]":
                break
            if separator != ",":
                raise FileRejected(f"the JSON array is broken after item {number} (a , or ] should follow it)")
    if next_char():
        raise FileRejected("the file goes on after the end of its JSON array")


_ROWS = {"csv": _csv_rows, "jsonl": _jsonl_rows, "json": _json_rows}


def _cell(value: object) -> str:
    return "" if value is None else str(value).strip()


def _collect(rows: Iterator[Row], text_column: str, max_rows: int | None) -> tuple[FilePosts, list[str]]:
    """The posts of ``rows``, and every column name seen."""
    posts: list[Post] = []
    skipped: list[str] = []
    columns: dict[str, None] = {}  # in order of appearance
    count = 0
    for count, row in enumerate(rows, start=1):
        if max_rows is not None and count > max_rows:
            raise FileRejected(
                f"the file has more than {max_rows:,} rows, the most one file may hold (SENTISTREAM_UPLOAD_MAX_ROWS)"
            )
        if isinstance(row, str):
            skipped.append(row)
            continue
        columns.update(dict.fromkeys(str(name) for name in row if name is not None))
        try:
            posts.append(
                Post(
                    author=_cell(row.get("author")) or f"anonymous-{(count - 1) % ANONYMOUS_AUTHORS:02d}",
                    source=_cell(row.get("source")) or DEFAULT_FILE_SOURCE,
                    text=_cell(row.get(text_column)),
                )
            )
        except ValidationError as exc:
            skipped.append(f"row {count}: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    return FilePosts(posts, count, skipped), list(columns)


def read_file_posts(
    rows: Path | str | BinaryIO,
    text_column: str = "text",
    file_format: FileFormat | None = None,
    max_rows: int | None = None,
) -> FilePosts:
    """The posts of a CSV, JSON Lines or JSON-array file: a path, or a binary file such as an upload (left open).

    Read as a stream, one record at a time; more than ``max_rows`` records is an error, never a silent cut.
    The format is ``file_format``, else told by the name's suffix (:func:`format_of`). ``text_column`` is
    required; ``author`` and ``source`` columns are used when present, otherwise (or when empty) the author
    is one of a few anonymous keys and the source is ``"upload"``. Records without text, or that make no
    valid post, are skipped and listed. Raises :class:`FileRejected` with a readable message.
    """
    name = str(rows) if isinstance(rows, (str, Path)) else str(getattr(rows, "name", "") or "")
    if not name and file_format is None:
        raise FileRejected("a file without a name needs file_format='csv', 'jsonl' or 'json'")
    kind = file_format or format_of(name)
    name = name or "the file"
    with open(rows, "rb") if isinstance(rows, (str, Path)) else contextlib.nullcontext(rows) as binary:
        # utf-8-sig: spreadsheet programs start CSV files with a byte order mark.
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="" if kind == "csv" else None)
        try:
            parsed, columns = _collect(_ROWS[kind](text), text_column, max_rows)
        except UnicodeDecodeError:
            raise FileRejected(f"{name} is not UTF-8 text") from None
        except csv.Error as exc:
            raise FileRejected(f"{name} is not a readable CSV file ({exc})") from None
        finally:
            text.detach()  # closing the wrapper would close the caller's file
    if columns and text_column not in columns:
        raise FileRejected(f"column {text_column!r} not found; the file has columns: {', '.join(columns)}")
    if not parsed.rows:
        raise FileRejected("the file holds no rows")
    if not parsed.posts:
        example = f" (e.g. {parsed.skipped[0]})" if parsed.skipped else ""
        raise FileRejected(f"no row of the file makes a valid post{example}")
    if parsed.skipped:
        logger.warning(
            "Skipped %d of %d rows that make no valid post, e.g. %s",
            len(parsed.skipped),
            parsed.rows,
            parsed.skipped[0],
        )
    return parsed


def file_posts(
    rows: Path | str | BinaryIO,
    text_column: str = "text",
    file_format: FileFormat | None = None,
    loop: bool = True,
) -> Iterator[Post]:
    """Replay the posts of a file (see :func:`read_file_posts`), forever when ``loop``."""
    return replay(read_file_posts(rows, text_column, file_format).posts, loop)
