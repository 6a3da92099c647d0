"""The language and keyword filters, the de-duplication memory and the back-off every live source shares."""

from __future__ import annotations

import pytest

from producer.live.backoff import Backoff
from producer.live.filters import KeywordFilter, LanguageFilter, comma_list, language_tag
from producer.live.recent import RecentIds


def test_english_is_the_default_and_a_region_or_script_of_it_counts() -> None:
    english = LanguageFilter()
    assert english.choose(["en"]) == (True, "en")
    assert english.choose(["en-GB"]) == (True, "en-GB")
    assert english.choose(["EN_us"]) == (True, "EN-us")
    assert english.choose(["de"]) == (False, "de")


def test_an_unknown_language_is_sent_without_one() -> None:
    english = LanguageFilter()
    assert english.choose([]) == (True, None)
    assert english.choose(["und"]) == (True, None)  # BCP-47's "undetermined"
    assert english.choose(["not a tag", 7, None]) == (True, None)


def test_a_post_in_several_languages_is_sent_tagged_with_the_allowed_one() -> None:
    assert LanguageFilter().choose(["ja", "en"]) == (True, "en")
    assert LanguageFilter.parse(["de", "fr"]).choose(["ja", "fr-CA"]) == (True, "fr-CA")


def test_every_language_and_parsing() -> None:
    assert LanguageFilter.parse(["*"]).choose(["ja"]) == (True, "ja")
    assert LanguageFilter.parse([]).allowed is None
    assert LanguageFilter.parse(comma_list("en, pt-BR")).allowed == {"en", "pt"}
    with pytest.raises(ValueError, match="not BCP-47"):
        LanguageFilter.parse(["english!"])
    assert language_tag("x" * 40) is None


def test_keywords_match_whole_words_ignoring_case() -> None:
    cats = KeywordFilter(("cat", "New York", "#rust"))
    assert cats.matches("My CAT is asleep")
    assert cats.matches("#cat of the day")
    assert cats.matches("Greetings from new york!")
    assert cats.matches("learning #Rust today")
    assert not cats.matches("concatenate strings")
    assert not cats.matches("rust never sleeps")  # "#rust" asks for the hashtag
    assert KeywordFilter().matches("anything at all")


def test_comma_lists() -> None:
    assert comma_list(" a, b,,c ,") == ("a", "b", "c")
    assert comma_list("") == comma_list(None) == ()


def test_recent_ids_forget_the_oldest_and_rebuild_in_order() -> None:
    recent = RecentIds(3)
    assert [recent.add(i) for i in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert list(recent) == ["b", "c", "d"] and "a" not in recent
    assert list(RecentIds(3, recent)) == list(recent)
    assert list(RecentIds(2, recent)) == ["c", "d"]


def test_backoff_doubles_up_to_its_maximum_jitters_downwards_and_resets() -> None:
    highest = Backoff(initial=1, maximum=10, jitter=0.2, rng=lambda: 0.0)
    assert [highest.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    assert highest.failures == 6
    highest.reset()
    assert highest.next_delay() == 1
    lowest = Backoff(initial=1, maximum=10, jitter=0.2, rng=lambda: 1.0)
    assert [lowest.next_delay() for _ in range(5)] == pytest.approx([0.8, 1.6, 3.2, 6.4, 8.0])
    with pytest.raises(ValueError):
        Backoff(initial=0)
