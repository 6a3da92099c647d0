"""Plain text from the HTML a network sends as a post's content (Mastodon's ``content``)."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

_BLOCKS = ("p", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")


def html_to_text(html: str) -> str:
    """The text a reader sees: paragraphs apart by a blank line, ``<br>`` a line break, entities decoded,
    links as their full text (Mastodon hides part of a long URL in invisible spans: they are kept)."""
    soup = BeautifulSoup(html, "lxml")
    for hidden in soup(["script", "style", "template"]):
        hidden.decompose()
    for line_break in soup("br"):
        line_break.replace_with("\n")
    for block in soup(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    lines = (line.strip() for line in soup.get_text().split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
