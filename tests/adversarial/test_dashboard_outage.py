"""Two tabs on every page while Kafka goes away and comes back.

Each page keeps rendering from the server's snapshot, says Kafka is unreachable and how old its data is,
and recovers by itself when Kafka is back, with one cluster monitor and one results feed for all tabs.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from confluent_kafka import Producer
from streamlit.testing.v1 import AppTest

from common.settings import Settings
from kafka_local.__main__ import DEFAULT_LIBS
from kafka_local.cluster import LocalCluster, port_is_free
from tests.conftest import fresh_settings
from tests.dashboard.apptest import PAGES, metric, open_page, rerun_until, texts
from tests.dashboard.conftest import release_server_objects, use_settings  # noqa: F401 - fixtures
from tests.dashboard.samples import result_json

AGE = re.compile(r"Data from \d\d:\d\d:\d\d, (\d+) s ago\.")


def free_base_port() -> int:
    """A broker port, and its controller port 100 above, both free (below the ephemeral range)."""
    return next(port for port in range(21000, 30000, 7) if port_is_free(port) and port_is_free(port + 100))


def send_results(settings: Settings, first: int, count: int) -> None:
    producer = Producer(settings.kafka_client_config())
    for i in range(first, first + count):
        producer.produce(settings.topic_results, result_json(f"post-{i}"), b"ann")
    assert producer.flush(30) == 0


def kafka_ok(app: AppTest) -> bool:
    return any("Kafka: 1 broker" in m.value for m in app.markdown) and not app.error


def outage_shown(app: AppTest) -> bool:
    return any("Kafka is unreachable" in e.value for e in app.error) and AGE.search(texts(app)) is not None


def age_shown(app: AppTest) -> int:
    return int(AGE.search(texts(app)).group(1))


def alive(name: str) -> int:
    return sum(thread.name == name for thread in threading.enumerate())


@pytest.mark.usefixtures("release_server_objects")
def test_every_page_in_two_tabs_rides_out_a_kafka_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_base_port()
    cluster = LocalCluster(tmp_path / "kafka", DEFAULT_LIBS)
    spec = cluster.start(nodes=1, base_port=port)
    try:
        settings = fresh_settings(spec.bootstrap_servers, tmp_path / "state", monitor_interval_seconds=1.0)
        use_settings(settings, monkeypatch)
        send_results(settings, 0, 25)
        tabs = {page: [open_page(page), open_page(page)] for page in PAGES}
        everywhere = [(page, tab) for page, pair in tabs.items() for tab in pair]
        for _, tab in everywhere:
            rerun_until(tab, kafka_ok, timeout=60)
        for tab in tabs["pages/live.py"]:
            rerun_until(tab, lambda app: metric(app, "Posts") == "25", timeout=60)
        for tab in tabs["pages/monitoring.py"]:
            rerun_until(tab, lambda app: metric(app, "Brokers") == "1", timeout=30)
        assert (alive("cluster-monitor"), alive("results-feed")) == (1, 1)  # per server, not per tab

        cluster.stop()
        for _, tab in everywhere:
            rerun_until(tab, outage_shown, timeout=60)
        # Each page still shows what it had, from the snapshot and the feed's memory.
        for tab in tabs["pages/live.py"]:
            assert metric(tab, "Posts") == "25"
        for tab in tabs["pages/monitoring.py"]:
            assert metric(tab, "Brokers") == "1" and metric(tab, "Pipeline lag") == "0"
            assert any("these are the last figures it gave" in w.value for w in tab.warning)
        for page, tab in everywhere:
            assert tab.title and not tab.exception, page
        # The age on screen is the data's, and it grows while Kafka stays away.
        first_age = age_shown(everywhere[0][1])
        rerun_until(everywhere[0][1], lambda app: age_shown(app) > first_age, timeout=30)

        cluster.start(nodes=1, base_port=port)
        for _, tab in everywhere:
            rerun_until(tab, kafka_ok, timeout=120)
        for tab in tabs["pages/monitoring.py"]:
            assert not any("last figures" in w.value for w in tab.warning)
        send_results(settings, 25, 5)  # the results feed follows again, in every tab
        for tab in tabs["pages/live.py"]:
            rerun_until(tab, lambda app: metric(app, "Posts") == "30", timeout=120)
        assert (alive("cluster-monitor"), alive("results-feed")) == (1, 1)
    finally:
        cluster.stop()
