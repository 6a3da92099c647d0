"""Every page with streamlit's AppTest, against the session's real Kafka and the real pipeline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import confluent_kafka
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

import dashboard.cluster_monitor
import dashboard.results_feed
from common.contract import LABELS
from common.settings import Settings
from dashboard import resources
from tests.dashboard.apptest import PAGES, metric, open_page, rerun_until, table, texts
from tests.dashboard.conftest import make_posts, use_settings
from tests.processes import running
from tests.topic_reader import read_all
from tests.topic_writer import send_posts
from tests.waiting import wait_for


def test_live_page_shows_the_pipelines_results_counted_once(app_settings: Settings) -> None:
    posts = make_posts(40) + make_posts(20, source="reddit")
    with running(app_settings, "pipeline", "--workers", "1", "--no-stats"):
        app = open_page("pages/live.py")
        send_posts(app_settings, posts)
        rerun_until(app, lambda app: metric(app, "Posts") == "60")
        assert len(app.get("plotly_chart")) == 6
        latest = next(frame.value for frame in app.dataframe if "text" in frame.value.columns)
        assert set(latest["text"]) <= {post.text for post in posts} and len(latest) == 60
        scored_by = next(frame.value for frame in app.dataframe if "share" in frame.value.columns)
        assert scored_by[["model", "posts"]].values.tolist() == [["tiny", 60]]  # the model the pipeline loaded
        assert {label for labels in latest["label"] for label in labels} <= set(LABELS)

        # At-least-once delivery may repeat a result: once the server has read it, the page still counts each post once.
        result = read_all(app_settings, app_settings.topic_results)[0]
        producer = Producer(app_settings.kafka_client_config())
        producer.produce(app_settings.topic_results, result.value(), result.key())
        producer.flush(10)
        wait_for(lambda: resources.results_feed().status().duplicates == 1, 30, "the repeated result to be read")
        app.run()
        assert metric(app, "Posts") == "60"

        app.multiselect(key="live-sources").set_value(["reddit"]).run()
        assert metric(app, "Posts") == "20"
        app.multiselect(key="live-sources").set_value([]).run()
        app.multiselect(key="live-authors").set_value(["author-1"]).run()
        assert metric(app, "Posts") == str(sum(post.author == "author-1" for post in posts))

        monitoring = open_page("pages/monitoring.py")
        rerun_until(
            monitoring, lambda app: metric(app, "Pipeline workers") == "1" and metric(app, "Pipeline lag") == "0"
        )


def test_analyze_page_gets_a_real_label_through_the_pipeline(app_settings: Settings) -> None:
    with running(app_settings, "pipeline", "--workers", "1", "--no-stats"):
        app = open_page("pages/analyze.py")
        app.text_area(key="analyze-text").input("I absolutely love this, what a wonderful day!")
        clicked_at = time.time()
        app.button[0].click().run()
        assert not app.error, [e.value for e in app.error]
        rerun_until(app, lambda app: metric(app, "Label") is not None, timeout=180)  # the worker starts cold
        seen_within = time.time() - clicked_at
        label = metric(app, "Label")
        assert any(f"[{name}]" in label for name in LABELS), label
        history = app.dataframe[0].value
        # Kafka's timestamps: the post's after the click, its result's before the page showed it (to the millisecond).
        assert list(history["status"]) == ["done"] and 0 < history["latency"][0] <= seen_within + 0.001

        app.toggle(key="analyze-batch").set_value(True).run()
        app.text_area(key="analyze-text").input("Great job team\n\nThe train leaves at four\nI hate waiting")
        app.button[0].click().run()  # a form sends its values with the submit click
        rerun_until(app, lambda app: list(app.dataframe[0].value["status"]).count("done") == 4, timeout=60)
        assert list(app.dataframe[0].value["text"][:3]) == [
            "Great job team",
            "The train leaves at four",
            "I hate waiting",
        ]


def test_analyze_page_refuses_too_long_or_empty_text_with_a_message(app_settings: Settings) -> None:
    app = open_page("pages/analyze.py")
    app.text_area(key="analyze-text").input("x" * (app_settings.max_text_chars + 1))
    app.button[0].click().run()
    assert any("the limit is" in e.value for e in app.error)
    app.text_area(key="analyze-text").input("   ")
    app.button[0].click().run()
    assert any("Type some text" in e.value for e in app.error)
    assert read_all(app_settings, app_settings.topic_posts) == []


def test_analyze_page_renders_user_text_as_text_only(app_settings: Settings) -> None:
    hostile = "<img src=x onerror=alert(1)> **bold** [link](http://evil)"
    with running(app_settings, "pipeline", "--workers", "1", "--no-stats"):
        app = open_page("pages/analyze.py")
        app.text_area(key="analyze-text").input(hostile)
        app.button[0].click().run()
        rerun_until(app, lambda app: metric(app, "Label") is not None, timeout=180)  # the worker starts cold
    assert app.dataframe[0].value["text"][0] == hostile
    rendered = [m.value for m in app.markdown] + [e.value for e in app.error] + [w.value for w in app.warning]
    assert not any("evil" in text or "onerror" in text for text in rendered)


def test_producer_page_starts_changes_and_stops_the_real_producer(app_settings: Settings) -> None:
    app = open_page("pages/producer.py")
    app.radio(key="producer-source").set_value("synthetic").run()
    app.number_input(key="producer-rate").set_value(50.0).run()
    app.button(key="producer-start").click().run()
    rerun_until(app, lambda app: (metric(app, "Delivered") or "0") not in ("0",), timeout=30)
    assert any("Running" in header.value for header in app.subheader)
    assert metric(app, "Target") == "50/s"
    app.number_input(key="producer-rate").set_value(100.0).run()  # changed while it runs
    assert metric(app, "Target") == "100/s"

    other_tab = open_page("pages/producer.py")  # one producer per server: another tab sees it running
    assert any("Running — Synthetic generator" in header.value for header in other_tab.subheader)
    other_tab.button(key="producer-stop").click().run()
    rerun_until(app, lambda app: any("Stopped" in header.value for header in app.subheader), timeout=30)
    assert int(metric(app, "Failed")) == 0
    assert len(read_all(app_settings, app_settings.topic_posts)) == int(metric(app, "Delivered").replace(",", ""))


def test_producer_starts_itself_once_when_autostart_is_set(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, release_server_objects: None, caplog: pytest.LogCaptureFixture
) -> None:
    use_settings(settings.model_copy(update={"producer_autostart": True, "producer_rate": 25.0}), monkeypatch)
    with caplog.at_level(logging.INFO, logger="dashboard"):
        tabs = [open_page("pages/live.py"), open_page("pages/producer.py"), open_page("pages/producer.py")]
        for tab in tabs:
            tab.run()
    starts = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith(("Producer started", "Producer autostart"))
    ]
    assert starts == ["Producer started: Shipped data set at 25 posts/s"], "one server, one producer, started once"
    app = tabs[-1]
    assert any("Running — Shipped data set" in header.value for header in app.subheader)
    assert metric(app, "Target") == "25/s"


def test_producer_page_explains_an_unusable_upload(app_settings: Settings) -> None:
    app = open_page("pages/producer.py")
    app.radio(key="producer-source").set_value("upload").run()
    app.button(key="producer-start").click().run()
    assert any("did not start" in e.value for e in app.error)
    assert "choose a CSV, JSON Lines or JSON file" in texts(app)


def test_monitoring_lists_the_topics_lag_and_workers(app_settings: Settings) -> None:
    send_posts(app_settings, make_posts(30))
    app = open_page("pages/monitoring.py")
    # The monitor's first poll of the cluster, a moment after the page opened (which did not wait for it).
    rerun_until(app, lambda app: metric(app, "Brokers") == "1", timeout=30)
    assert metric(app, "Pipeline workers") == "0"
    assert metric(app, "Pipeline lag") == "30"  # nothing consumed yet: all of it waits
    assert any("The pipeline is not running" in w.value and "python -m pipeline" in w.value for w in app.warning)
    assert any(":red-badge[" in m.value and "Pipeline not running" in m.value for m in app.markdown)
    partitions = table(app, "partitions")
    assert set(partitions["topic"]) == {
        app_settings.topic_posts,
        app_settings.topic_results,
        app_settings.topic_dead_letters,
        app_settings.topic_stats,
        app_settings.topic_pipeline_status,
    }
    assert partitions.loc[partitions["topic"] == app_settings.topic_posts, "end offset"].sum() == 30
    assert (partitions["under-replicated"] == "").all()
    lag = table(app, "pipeline-lag")
    assert lag["lag"].sum() == 30 and len(lag) == app_settings.posts_partitions
    assert set(table(app, "background-threads")["state"]) == {"working"}


def test_monitoring_browses_dead_letters(app_settings: Settings) -> None:
    producer = Producer(app_settings.kafka_client_config())
    producer.produce(app_settings.topic_posts, b"{not json", b"k")
    producer.flush(10)
    with running(app_settings, "pipeline", "--workers", "1", "--no-stats"):
        read_all(app_settings, app_settings.topic_dead_letters, timeout=90, at_least=1)
        app = open_page("pages/monitoring.py")
        rerun_until(app, lambda app: metric(app, "Dead letters") == "1", timeout=30)
        rerun_until(app, lambda app: table(app, "dead-letters") is not None, timeout=30)
    letters = table(app, "dead-letters")
    assert list(letters["reason"]) == ["invalid_json"] and letters["preview"][0] == "{not json"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_status_not_a_traceback_when_kafka_is_unreachable(
    settings: Settings, page: str, monkeypatch: pytest.MonkeyPatch, release_server_objects: None
) -> None:
    use_settings(settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"}), monkeypatch)
    app = open_page(page)  # renders at once: it never waits on Kafka
    rerun_until(app, lambda app: any("Kafka is unreachable" in e.value for e in app.error), timeout=30)
    assert "No data from Kafka yet" in texts(app)


def test_no_page_talks_to_kafka_while_it_renders(app_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the server's two background threads query Kafka; a page (any tab, any rerun) reads their snapshots."""
    calls: list[tuple[str, str]] = []

    def recording(name: str, real: Callable) -> Callable:
        def method(self, *args, **kwargs):
            calls.append((threading.current_thread().name, name))
            return real(self, *args, **kwargs)

        return method

    for name in (
        "list_topics",
        "list_offsets",
        "describe_consumer_groups",
        "list_consumer_group_offsets",
        "describe_topics",
    ):
        monkeypatch.setattr(AdminClient, name, recording(name, getattr(AdminClient, name)))
    # librdkafka's Consumer is immutable: a subclass records instead, wherever the product makes consumers.
    consumer_calls = ("list_topics", "consume", "poll", "offsets_for_times", "committed", "get_watermark_offsets")
    recording_consumer = type(
        "RecordingConsumer",
        (Consumer,),
        {name: recording(f"consumer.{name}", getattr(Consumer, name)) for name in consumer_calls},
    )
    for module in (confluent_kafka, dashboard.cluster_monitor, dashboard.results_feed):
        monkeypatch.setattr(module, "Consumer", recording_consumer)
    tabs = [open_page(page) for page in PAGES]
    rerun_until(tabs[-1], lambda app: metric(app, "Brokers") == "1", timeout=30)
    for tab in tabs:
        tab.run()
        assert not tab.exception, tab.exception
    assert {"list_topics", "list_consumer_group_offsets", "consumer.consume", "consumer.offsets_for_times"} <= {
        name for _, name in calls
    }
    assert {thread for thread, _ in calls} == {"cluster-monitor", "results-feed"}


def test_analyze_page_does_not_wait_for_an_unreachable_kafka(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, release_server_objects: None
) -> None:
    use_settings(settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"}), monkeypatch)
    app = open_page("pages/analyze.py")
    app.text_area(key="analyze-text").input("Is anyone there?")
    app.button[0].click().run()  # queued: the rerun does not wait for Kafka's answer
    assert list(app.dataframe[0].value["status"]) == ["waiting…"] and not app.error
    rerun_until(app, lambda app: list(app.dataframe[0].value["status"]) == ["not sent"], timeout=30)
    assert "Kafka did not take it: Local: Message timed out" in app.dataframe[0].value["reason"][0]
    assert any("Kafka did not take some posts" in e.value for e in app.error)
