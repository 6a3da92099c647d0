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
from producer.sources import DEFAULT_DATASET, dataset_posts, file_posts, synthetic_posts


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
    path.write_text("".join(json.dumps({"author": f"a{i}", "source": "s", "text": f"post {i}"}) + "\n" for i in range(3)))
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
