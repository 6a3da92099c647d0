"""The live sources' logic without Kafka: statuses read from the status topic's records, staleness, the table, and
the command, environment and output of a live source's child process (no token in its command line or shown)."""

from __future__ import annotations

import sys
import time

import pytest
from pydantic import SecretStr

from common.contract import SourceState, SourceStatus
from common.settings import Settings
from dashboard import live_control
from dashboard.live_control import LiveOptions, LiveSourceHolder, command, environment, redact, secrets_of
from dashboard.live_sources import SourceStatuses, shown_state, sources_table, state_text
from tests.waiting import wait_for

TOKEN = "tok-3f9a2c-SECRET"


def source_status(
    name: str = "bluesky", state: SourceState = SourceState.CONNECTED, age: float = 0.0, **fields: object
) -> SourceStatus:
    now = time.time()
    values: dict[str, object] = {"network": name, "started_at": now - age - 60, "interval_seconds": 5.0} | fields
    return SourceStatus(name=name, state=state, sent_at=now - age, **values)  # type: ignore[arg-type]


def test_the_latest_valid_status_of_each_source_is_kept_and_a_tombstone_forgets_one() -> None:
    statuses = SourceStatuses()
    statuses.add(b"bluesky", source_status(posts=1).to_bytes())
    statuses.add(b"bluesky", source_status(posts=2).to_bytes())
    statuses.add(b"mastodon", source_status("mastodon").to_bytes())
    statuses.add(b"x", b"{not a status")  # anyone can write to the topic
    statuses.add(b"y", b'{"name": "y"}')
    assert [(s.name, s.posts) for s in statuses.latest()] == [("bluesky", 2), ("mastodon", 0)]
    statuses.add(b"mastodon", None)
    assert [s.name for s in statuses.latest()] == ["bluesky"]


def test_a_source_silent_for_three_intervals_is_stale_unless_it_said_it_stopped() -> None:
    now = time.time()
    assert shown_state(source_status(age=14), now) == "connected"
    assert shown_state(source_status(age=16), now) == "stale"
    assert shown_state(source_status(state=SourceState.RETRYING, age=16), now) == "stale"
    assert shown_state(source_status(state=SourceState.STOPPED, age=3600), now) == "stopped"
    assert state_text(source_status(age=16), now) == "stale: no status for over 15 s"


def test_a_retrying_source_says_which_attempt_and_when_it_tries_again() -> None:
    now = time.time()
    retrying = source_status(state=SourceState.RETRYING, failures=3, retry_at=now + 12.2, last_error="refused")
    assert state_text(retrying, now) == "retrying (attempt 3, next in 12 s)"
    assert state_text(retrying, now + 13) == "retrying (attempt 3, next now)"


def test_the_table_lists_live_sources_first_with_their_counters() -> None:
    now = time.time()
    rows = [
        source_status("zzz", state=SourceState.STOPPED, age=30),
        source_status("gone", age=600),
        source_status("b", state=SourceState.RETRYING, last_error="<b>503</b>", failures=1, retry_at=now + 5),
        source_status(
            "a",
            posts=1234,
            posts_per_second=2.5,
            duplicates=3,
            skipped={"language": 7, "no_text": 9},
            bad_frames=2,
            last_post_at=now - 4,
        ),
    ]
    table = sources_table(rows, now, clock=lambda at: f"t{at - now:+.0f}", ago=lambda s: f"{s:.0f}s")
    assert list(table["source"]) == ["a", "b", "gone", "zzz"]
    assert list(table["state"]) == [
        "connected",
        "retrying (attempt 1, next in 5 s)",
        "stale: no status for over 15 s",
        "stopped",
    ]
    first = table.iloc[0]
    assert (first["posts"], first["posts/s"], first["duplicates"], first["bad frames"]) == (1234, 2.5, 3, 2)
    assert first["skipped"] == "no_text 9, language 7" and first["last post"] == "t-4 (4s)"
    assert table.iloc[1]["last error"] == "<b>503</b>" and table.iloc[2]["reported"] == "600s"


def test_a_token_goes_to_the_childs_environment_never_its_command_line(settings_unit: Settings) -> None:
    options = LiveOptions("mastodon", keywords=" cats, dogs ", timeline="hashtag", hashtag="cats", page_id="ignored")
    args = command(options)
    assert args[1:] == [
        "-m", "producer", "--source", "mastodon", "--keywords", "cats, dogs", "--timeline", "hashtag", "--hashtag", "cats"
    ]  # fmt: skip
    env = environment(settings_unit, LiveOptions("mastodon", instance_url="http://127.0.0.1:1"), TOKEN)
    assert env["SENTISTREAM_MASTODON_ACCESS_TOKEN"] == TOKEN
    assert env["SENTISTREAM_MASTODON_INSTANCE_URL"] == "http://127.0.0.1:1"
    facebook = environment(settings_unit, LiveOptions("facebook", page_id="42"), TOKEN)
    assert facebook["SENTISTREAM_FACEBOOK_PAGE_TOKEN"] == TOKEN and "--page-id" in command(
        LiveOptions("facebook", page_id="42")
    )
    assert "SENTISTREAM_MASTODON_ACCESS_TOKEN" not in environment(settings_unit, LiveOptions("bluesky"), TOKEN)
    assert not any(TOKEN in arg for arg in command(LiveOptions("facebook", page_id="42")))


def test_secrets_are_blanked_out_of_what_the_child_wrote() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", sasl_password=SecretStr("kafka-pass"))
    secrets = secrets_of(settings, TOKEN)
    assert set(secrets) == {TOKEN, "kafka-pass"}
    assert redact(f"GET /x?access_token={TOKEN} as kafka-pass", secrets) == (
        "GET /x?access_token=[token hidden] as [token hidden]"
    )


def test_a_child_that_dies_is_seen_with_its_exit_code_and_its_output_without_the_token(
    settings_unit: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    blabbing = [
        sys.executable,
        "-c",
        "import os, sys; print('token is', os.environ['SENTISTREAM_FACEBOOK_PAGE_TOKEN']); sys.exit(3)",
    ]
    monkeypatch.setattr(live_control, "command", lambda options: blabbing)
    holder = LiveSourceHolder(settings_unit)
    holder.start(LiveOptions("facebook", page_id="42"), TOKEN)
    ended = wait_for(lambda: [s for s in holder.states() if not s.running], 30, "the child to end")[0]
    assert (ended.network, ended.returncode, ended.failed) == ("facebook", 3, True)
    assert ended.tail == "token is [token hidden]" and TOKEN not in repr(ended)


def test_a_stopped_child_is_no_failure_and_one_per_network_runs(
    settings_unit: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A source that runs until it is signalled to stop.
    until_stopped = [sys.executable, "-c", "import signal; print('up', flush=True); signal.pause()"]
    monkeypatch.setattr(live_control, "command", lambda options: until_stopped)
    holder = LiveSourceHolder(settings_unit)
    holder.start(LiveOptions("bluesky"))
    wait_for(lambda: holder.states()[0].tail == "up", 30, "the child to run")
    with pytest.raises(RuntimeError, match="already running"):
        holder.start(LiveOptions("bluesky"))
    holder.stop_all()
    stopped = wait_for(lambda: [s for s in holder.states() if not s.running], 30, "the child to end")[0]
    assert stopped.stop_requested and not stopped.failed


@pytest.fixture
def settings_unit(tmp_path) -> Settings:
    return Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path / "state")
