"""How a live source is configured: options over settings, the token from the environment only."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from common.settings import Settings
from producer.__main__ import main
from producer.live.bluesky import BlueskySource
from producer.live.mastodon import MastodonSource


def test_bluesky_options_win_over_settings() -> None:
    settings = Settings(bluesky_keywords="tea", bluesky_accounts="did:plc:a,did:plc:b", live_languages="en,de")
    from_settings = BlueskySource.from_settings(settings)
    assert from_settings.config.keywords.keywords == ("tea",)
    assert from_settings.accounts == ("did:plc:a", "did:plc:b")
    assert from_settings.config.languages.allowed == {"en", "de"}
    assert from_settings.config.status_topic == settings.topic_source_status
    chosen = BlueskySource.from_settings(settings, keywords="coffee", accounts="", languages="*", name="bsky-coffee")
    assert chosen.config.keywords.keywords == ("coffee",) and chosen.accounts == ()
    assert chosen.config.languages.allowed is None and chosen.name == "bsky-coffee"
    assert chosen.subscribe_url(None).endswith("?wantedCollections=app.bsky.feed.post")


def test_mastodon_token_comes_from_settings_and_is_never_shown() -> None:
    settings = Settings(
        mastodon_instance_url="https://social.example/",
        mastodon_timeline="hashtag",
        mastodon_hashtag="cats",
        mastodon_access_token=SecretStr("t0ps3cret"),
    )
    source = MastodonSource.from_settings(settings)
    assert source.instance == "social.example" and source.timeline_request() == ("/api/v1/timelines/tag/cats", {})
    assert source.stream_url("wss://streaming.social.example") == (
        "wss://streaming.social.example/api/v1/streaming?stream=hashtag&tag=cats"
    )
    assert "t0ps3cret" not in f"{source!r} {source.describe()} {vars(source)}"
    local = MastodonSource.from_settings(settings, timeline="local")
    assert local.timeline_request() == ("/api/v1/timelines/public", {"local": "true"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "bluesky", "--count", "3"], "do not apply to a live source"),
        (["--source", "bluesky", "--accounts", "alice.bsky.social"], "are DIDs"),
        (["--source", "mastodon", "--timeline", "list", "--list-id", "1"], "needs a list id and an access token"),
        (["--source", "mastodon", "--timeline", "hashtag"], "needs a hashtag"),
        (["--source", "bluesky", "--languages", "en,!!"], "not BCP-47"),
    ],
)
def test_the_command_line_refuses_what_cannot_work(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTISTREAM_MASTODON_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("SENTISTREAM_MASTODON_HASHTAG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
