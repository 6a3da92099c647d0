"""The Producer page's live sources, against the session's real Kafka: every source's status from the real status
topic (connected, retrying, stopped, stale), and a live source started from the page as a real child process
against a local fake Mastodon, its token in the child's environment only."""

from __future__ import annotations

import logging
import re
import time

import psutil
import pytest
from confluent_kafka import Producer

from common.contract import SourceState, SourceStatus
from common.settings import Settings
from dashboard import resources
from tests.dashboard.apptest import markdown_shown, open_page, rerun_until, texts
from tests.dashboard.test_live_sources_logic import TOKEN, source_status
from tests.producer.live import fake_mastodon

HOSTILE = "ConnectionRefused: <img src=x onerror=alert(1)> **bold** [link](http://evil) :red[colour]"


def publish(settings: Settings, *statuses: SourceStatus) -> None:
    producer = Producer(settings.kafka_client_config())
    for status in statuses:
        producer.produce(settings.topic_source_status, status.to_bytes(), status.name.encode())
    assert producer.flush(30) == 0


def sources(app) -> dict[str, dict[str, object]]:
    """The live sources table, by source name ({} while it is not shown)."""
    found = [frame.value for frame in app.dataframe if "bad frames" in frame.value.columns]
    return {row["source"]: row for row in found[0].to_dict("records")} if found else {}


def everything_shown(app) -> str:
    return "\n".join([texts(app), *markdown_shown(app), *(c.value for c in app.code), str(sources(app))])


def test_the_page_shows_each_sources_state_and_counters(app_settings: Settings) -> None:
    now = time.time()
    slow = {"interval_seconds": 60.0}  # live until the page has shown them, however long that takes
    publish(
        app_settings,
        source_status(
            "bluesky",
            posts=1520,
            posts_per_second=3.2,
            duplicates=4,
            skipped={"language": 88},
            last_post_at=now - 2,
            **slow,
        ),
        source_status(
            "mastodon",
            state=SourceState.RETRYING,
            last_error=HOSTILE,
            failures=2,
            retry_at=now + 600,
            detail="<i>x</i>",
            **slow,
        ),
        source_status("facebook", state=SourceState.STOPPED, posts=7),
        source_status("webhook", age=110),  # killed two minutes ago: no word since (its interval: 5 s)
    )
    app = open_page("pages/producer.py")
    rerun_until(app, lambda app: len(sources(app)) == 4, timeout=30)
    shown = sources(app)
    assert shown["bluesky"]["state"] == "connected" and shown["facebook"]["state"] == "stopped"
    assert shown["mastodon"]["state"].startswith("retrying (attempt 2, next in ")
    assert shown["webhook"]["state"] == "stale: no status for over 15 s" and shown["webhook"]["reported"] == "2 min ago"
    bluesky = shown["bluesky"]
    assert (bluesky["posts"], bluesky["posts/s"], bluesky["duplicates"], bluesky["skipped"]) == (
        1520,
        3.2,
        4,
        "language 88",
    )
    assert re.fullmatch(r"\d\d:\d\d:\d\d \(\d+ s ago\)", bluesky["last post"])
    assert shown["mastodon"]["last error"] == HOSTILE and shown["mastodon"]["following"] == "<i>x</i>"
    assert f"mastodon retrying: {HOSTILE}" in texts(app)  # whole, as text
    assert not any("evil" in text or "onerror" in text for text in markdown_shown(app))

    publish(app_settings, source_status("mastodon", posts=3, **slow))  # it reconnected
    rerun_until(app, lambda app: sources(app)["mastodon"]["state"] == "connected", timeout=30)
    assert "mastodon retrying" not in texts(app)


def test_a_source_started_from_the_page_gets_its_token_in_its_environment_only(
    app_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), fake_mastodon.serving() as (mastodon, url):
        app = open_page("pages/producer.py")
        app.radio(key="live-network").set_value("mastodon").run()
        # Empty languages mean the model's: the page says which.
        assert app.text_input(key="live-languages").placeholder.endswith(f"empty = {app_settings.model_languages}")
        app.text_input(key="live-instance_url").input(url)
        app.text_input(key="live-keywords").input("cats")
        app.text_input(key="live-token-mastodon").input(TOKEN).run()
        app.button(key="live-start").click().run()
        assert not app.error, [e.value for e in app.error]

        stream = mastodon.wait_for_streams(1, timeout=120)
        assert stream.authorization == f"Bearer {TOKEN}"  # the child read it from its environment
        child = psutil.Process(resources.live_sources().states()[0].pid)
        processes = [child, *child.children(recursive=True)]
        assert processes[0].cmdline()[1:] == ["-m", "producer", "--source", "mastodon", "--keywords", "cats"]
        assert not any(TOKEN in arg for process in processes for arg in process.cmdline())
        assert app.text_input(key="live-token-mastodon").value == ""  # not kept for the next start, nor shown
        assert TOKEN not in str(app.session_state.to_dict())
        rerun_until(app, lambda app: sources(app).get("mastodon", {}).get("state") == "connected", timeout=60)
        assert any("Mastodon source running since" in s.value for s in app.success)

        app.button(key="live-stop-mastodon").click().run()
        rerun_until(app, lambda app: sources(app)["mastodon"]["state"] == "stopped", timeout=60)
        rerun_until(app, lambda app: any("Mastodon source stopped" in i.value for i in app.info), timeout=30)
    assert not app.error
    assert TOKEN not in everything_shown(app) and TOKEN not in resources.live_sources().states()[0].tail
    assert not any(TOKEN in record.getMessage() for record in caplog.records)


def test_a_source_that_dies_shows_its_exit_and_what_it_wrote(app_settings: Settings) -> None:
    app = open_page("pages/producer.py")
    app.radio(key="live-network").set_value("facebook").run()
    app.text_input(key="live-token-facebook").input(TOKEN).run()
    app.button(key="live-start").click().run()  # no page id: the source refuses to start
    rerun_until(app, lambda app: any("Facebook page source exited with code 2" in e.value for e in app.error), 60)
    tail = app.code[0].value
    assert "the facebook source needs SENTISTREAM_FACEBOOK_PAGE_ID" in tail and TOKEN not in everything_shown(app)
