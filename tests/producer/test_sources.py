"""The post sources: shipped sample replay, synthetic generator, user CSV/JSONL files."""

from __future__ import annotations

import io
import itertools
import json
import re
import time
from pathlib import Path

import pytest

from common.contract import LABELS, Post
from producer import sources
from producer.sources import DEFAULT_DATASET, FileRejected, dataset_posts, file_posts, read_file_posts, synthetic_posts


def take(posts, n: int) -> list[Post]:
    return list(itertools.islice(posts, n))


def test_shipped_sample_is_a_realistic_anonymised_post_file() -> None:
    size = DEFAULT_DATASET.stat().st_size
    records = [json.loads(line) for line in DEFAULT_DATASET.read_text(encoding="utf-8").splitlines()]
    assert 3000 <= len(records) <= 5000
    assert size < 2 * 1024 * 1024
    posts = [Post.model_validate(record) for record in records]
    texts = [post.text for post in posts]
    assert len(set(texts)) == len(texts)
    # No real handle survives: every mention is @user.
    assert not [text for text in texts if re.search(r"(?<!\w)@(?!user\b)\w", text)]
    assert not [text for text in texts if "\ufffd" in text or "http" in text]
    assert {record["label"] for record in records} == set(LABELS)
    assert len({post.author for post in posts}) > 100
    assert {post.source for post in posts} >= {"twitter", "reddit"}
    assert max(post.created_at for post in posts) - min(post.created_at for post in posts) <= 24 * 3600


def test_dataset_replay_keeps_content_with_fresh_ids_and_times() -> None:
    records = [json.loads(line) for line in DEFAULT_DATASET.read_text(encoding="utf-8").splitlines()[:50]]
    before = time.time()
    posts = take(dataset_posts(), 50)
    assert [(p.author, p.source, p.text) for p in posts] == [(r["author"], r["source"], r["text"]) for r in records]
    assert len({p.id for p in posts}) == 50
    assert not {p.id for p in posts} & {r["id"] for r in records}
    assert all(before <= p.created_at <= time.time() for p in posts)


def test_dataset_loops_or_ends(tmp_path: Path) -> None:
    path = tmp_path / "three.jsonl"
    path.write_text(
        "".join(json.dumps({"author": f"a{i}", "source": "s", "text": f"post {i}"}) + "\n" for i in range(3))
    )
    assert [p.text for p in dataset_posts(path, loop=False)] == ["post 0", "post 1", "post 2"]
    looped = take(dataset_posts(path), 7)
    assert [p.text for p in looped] == ["post 0", "post 1", "post 2"] * 2 + ["post 0"]
    assert len({p.id for p in looped}) == 7


def test_synthetic_posts_are_valid_varied_and_reproducible() -> None:
    posts = take(synthetic_posts(seed=7), 500)
    again = take(synthetic_posts(seed=7), 500)
    assert [(p.id, p.author, p.source, p.text) for p in posts] == [(p.id, p.author, p.source, p.text) for p in again]
    assert [p.text for p in take(synthetic_posts(seed=8), 20)] != [p.text for p in posts[:20]]
    assert len({p.id for p in posts}) == 500
    assert len({p.author for p in posts}) > 50
    assert {p.source for p in posts} == {"twitter", "reddit", "mastodon", "news-comments"}
    texts = " ".join(p.text for p in posts)
    for word in ("amazing", "terrible", "scheduled for Tuesday", " but "):
        assert word in texts
    assert all(p.text == p.text.strip() and p.text for p in posts)


def test_file_posts_from_csv_path_uses_author_and_source_columns(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text('author,source,text\nann,forum,"I love it, really"\nbob,,meh\n,blog,awful day\n')
    posts = take(file_posts(path), 6)
    assert [(p.author, p.source, p.text) for p in posts[:3]] == [
        ("ann", "forum", "I love it, really"),
        ("bob", "upload", "meh"),
        ("anonymous-02", "blog", "awful day"),
    ]
    assert [p.text for p in posts[3:]] == [p.text for p in posts[:3]]  # it loops
    assert len({p.id for p in posts}) == 6


def test_file_posts_from_uploaded_jsonl_with_another_text_column() -> None:
    upload = io.BytesIO(b'{"body": "great service", "n": 1}\n{"body": "slow train", "n": 2}\n{"body": "  ", "n": 3}\n')
    posts = take(file_posts(upload, text_column="body", file_format="jsonl", loop=False), 10)
    assert [p.text for p in posts] == ["great service", "slow train"]  # the blank row is skipped
    assert [p.source for p in posts] == ["upload", "upload"]
    assert len({p.author for p in posts}) == 2  # anonymous posts still spread over keys


def test_file_posts_format_from_the_upload_name() -> None:
    upload = io.BytesIO(b"text\nhello there\n")
    upload.name = "mine.CSV"
    assert next(file_posts(upload)).text == "hello there"
    with pytest.raises(ValueError, match="file_format"):
        file_posts(io.BytesIO(b"text\nhi\n"))


def test_file_posts_names_the_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("message,author\nhello,ann\n")
    with pytest.raises(ValueError, match=r"'text' not found.*message, author"):
        file_posts(path)
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_text('{"text": "hi"}\n')
    with pytest.raises(ValueError, match="'content' not found"):
        file_posts(jsonl, text_column="content")


def test_file_posts_without_any_valid_row_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("text\n\n  \n")
    with pytest.raises(ValueError, match="no row"):
        file_posts(path)


class ReadCounter(io.BytesIO):
    """An upload that records how much was read from it, and in what pieces."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk

    def read1(self, size: int = -1) -> bytes:
        chunk = super().read1(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


def upload(data: str | bytes, name: str) -> ReadCounter:
    return ReadCounter(data.encode() if isinstance(data, str) else data, name)


def test_a_json_file_is_read_as_a_json_array() -> None:
    array = json.dumps(
        [{"text": "great service", "author": "ann"}, {"text": "slow train", "source": "forum"}], indent=2
    )
    parsed = read_file_posts(upload(array, "posts.json"))
    assert [(p.author, p.source, p.text) for p in parsed.posts] == [
        ("ann", "upload", "great service"),
        ("anonymous-01", "forum", "slow train"),
    ]
    assert (parsed.rows, parsed.skipped) == (2, [])
    # One object a line is JSON Lines, not JSON: a .json file holding it is refused, and says what to do.
    with pytest.raises(FileRejected, match=r"array of objects.*\.jsonl"):
        read_file_posts(upload('{"text": "a"}\n{"text": "b"}\n', "posts.json"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"text": "a"},]', "item 2 of the array is not valid JSON"),
        ('[{"text": "a"} {"text": "b"}]', "broken after item 1"),
        ('[{"text": "a"}] trailing', "goes on after the end"),
        ('[{"text": "a"', "item 1 of the array is not valid JSON"),
        ("[]", "no rows"),
    ],
)
def test_a_broken_json_array_is_refused_with_where_it_breaks(content: str, message: str) -> None:
    with pytest.raises(FileRejected, match=message):
        read_file_posts(upload(content, "posts.json"))


def test_a_json_array_is_decoded_item_by_item_across_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "READ_CHUNK", 7)  # every item, and the number 123456789, spans reads
    items = [{"text": f"post {i}", "n": 123456789, "nested": {"list": [1, 2, {"deep": "]}"}]}} for i in range(200)]
    numbers = [10**digits + 7 for digits in range(3, 20)]  # bare numbers: one is bound to end a read half-way
    parsed = read_file_posts(upload(json.dumps(items + numbers), "posts.json"))
    assert [p.text for p in parsed.posts] == [f"post {i}" for i in range(200)]
    assert parsed.skipped == [f"item {200 + i}: not a JSON object" for i in range(1, len(numbers) + 1)]


@pytest.mark.parametrize(
    ("name", "row"), [("posts.csv", "text\n{}\n"), ("posts.jsonl", '{{"text": "{}"}}\n'), ("posts.json", None)]
)
def test_a_file_over_the_row_limit_is_refused_after_reading_only_its_start(name: str, row: str | None) -> None:
    texts = [f"post number {i}" for i in range(100_000)]
    if row is None:
        data = json.dumps([{"text": text} for text in texts])
    else:
        header, line = row.split("\n", 1) if name.endswith(".csv") else ("", row)
        data = (header + "\n" if header else "") + "".join(line.format(text) for text in texts)
    file = upload(data, name)
    with pytest.raises(FileRejected, match=r"more than 1,000 rows.*SENTISTREAM_UPLOAD_MAX_ROWS"):
        read_file_posts(file, max_rows=1000)
    # A stream: it stopped soon after row 1,000, in bounded reads, far from the end of the file.
    assert file.tell() < len(data) // 10 and file.largest_read <= 1024 * 1024
    assert len(read_file_posts(upload(data, name), max_rows=100_000).posts) == 100_000  # at the limit: fine


def test_file_rows_that_make_no_post_are_skipped_and_listed() -> None:
    parsed = read_file_posts(upload('{"text": "fine"}\n\nnot json\n[1, 2]\n{"text": "   "}\n', "posts.ndjson"))
    assert [p.text for p in parsed.posts] == ["fine"]
    assert parsed.rows == 4
    assert parsed.skipped[:2] == ["line 3: not JSON (Expecting value)", "line 4: not a JSON object"]
    assert parsed.skipped[2].startswith("row 4: text:")


def test_a_file_that_is_not_utf8_or_has_no_format_is_refused() -> None:
    with pytest.raises(FileRejected, match=r"posts\.csv is not UTF-8 text"):
        read_file_posts(upload(b"text\n\xff\xfe oops\n", "posts.csv"))
    with pytest.raises(FileRejected, match=r"cannot tell the format of 'posts.xlsx'"):
        read_file_posts(upload(b"PK...", "posts.xlsx"))
    spreadsheet = read_file_posts(upload("\ufefftext,author\nhello,ann\n", "export.CSV"))  # with a byte order mark
    assert [(p.text, p.author) for p in spreadsheet.posts] == [("hello", "ann")]


def test_reading_an_upload_leaves_it_open_for_a_second_start() -> None:
    file = upload("text\nhello\n", "posts.csv")
    assert read_file_posts(file).rows == 1
    file.seek(0)
    assert read_file_posts(file).rows == 1
