"""Which posts a live source sends: the language and keyword filters every network shares."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from common.contract import LANGUAGE_TAG_MAX_CHARS, LANGUAGE_TAG_PATTERN, primary_language

EVERY_LANGUAGE = "*"
_TAG = re.compile(LANGUAGE_TAG_PATTERN)


def comma_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: how settings and options write lists."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def language_tag(tag: object) -> str | None:
    """A well-formed BCP-47 tag as ``Post.lang`` takes it (``pt_BR`` written ``pt-BR``); None for anything
    else, and for ``und`` (undetermined): unknown."""
    if not isinstance(tag, str):
        return None
    tag = tag.strip().replace("_", "-")
    if len(tag) > LANGUAGE_TAG_MAX_CHARS or not _TAG.fullmatch(tag) or primary_language(tag) is None:
        return None
    return tag


@dataclass(frozen=True)
class LanguageFilter:
    """The languages sent (primary subtags, e.g. ``en``); None = every language.

    A post whose network names no language (or only malformed tags) is sent with ``lang`` None: the
    pipeline decides. A post in several languages is sent if any of them is allowed, tagged with that one.
    """

    allowed: frozenset[str] | None = frozenset({"en"})

    @classmethod
    def parse(cls, languages: Iterable[str]) -> LanguageFilter:
        """From tags such as ``["en", "de"]``; ``["*"]`` (or nothing) = every language."""
        languages = list(languages)
        if not languages or EVERY_LANGUAGE in languages:
            return cls(None)
        tags = [language_tag(language) for language in languages]
        if None in tags:
            raise ValueError(f"not BCP-47 language tags: {languages!r} (e.g. en, pt-BR, or * for every language)")
        return cls(frozenset(primary for tag in tags if (primary := primary_language(tag))))

    def choose(self, languages: Sequence[object]) -> tuple[bool, str | None]:
        """Whether to send a post in ``languages`` (the network's tags), and the ``lang`` to send it with."""
        tags = [tag for tag in map(language_tag, languages) if tag]
        if not tags:
            return True, None
        if self.allowed is None:
            return True, tags[0]
        allowed = [tag for tag in tags if primary_language(tag) in self.allowed]
        return (True, allowed[0]) if allowed else (False, tags[0])

    def __str__(self) -> str:
        return EVERY_LANGUAGE if self.allowed is None else ",".join(sorted(self.allowed))


@dataclass(frozen=True)
class KeywordFilter:
    """Posts containing any of ``keywords`` as whole words, ignoring case (none = every post)."""

    keywords: tuple[str, ...] = ()

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        if not self.keywords:
            return None
        alternatives = "|".join(re.escape(keyword) for keyword in sorted(self.keywords, key=len, reverse=True))
        # Whole words: "cat" matches "Cat!" and "#cat", not "concatenate".
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def matches(self, text: str) -> bool:
        return self._pattern is None or self._pattern.search(text) is not None
