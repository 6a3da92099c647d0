"""Mastodon's HTML content as the plain text a reader sees."""

from __future__ import annotations

import pytest

from producer.live.html_text import html_to_text

MENTION = '<a href="https://a.example/@bob" class="u-url mention">@<span>bob</span></a>'
HASHTAG = '<a href="https://a.example/tags/cats" class="mention hashtag" rel="tag">#<span>cats</span></a>'
# Mastodon shortens a long link with invisible spans; the text keeps the whole address.
LINK = (
    '<a href="https://example.com/a/long/path" rel="nofollow noopener" target="_blank">'
    '<span class="invisible">https://</span><span class="ellipsis">example.com/a/lo</span>'
    '<span class="invisible">ng/path</span></a>'
)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (f"<p>Hi {MENTION}, look: {LINK}</p>", "Hi @bob, look: https://example.com/a/long/path"),
        (f"<p>One</p><p>Two<br>lines {HASHTAG}</p>", "One\n\nTwo\nlines #cats"),
        ("<p>Fish &amp; chips &lt;3 &#127839;</p>", "Fish & chips <3 \U0001f35f"),
        ("<p>Not <script>alert(1)</script>code</p>", "Not code"),
        ("plain text, no markup", "plain text, no markup"),
        ("<p></p><p> </p>", ""),
        ("<ul><li>first</li><li>second</li></ul>", "first\n\nsecond"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text
