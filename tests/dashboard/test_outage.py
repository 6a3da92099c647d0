"""The app through a Kafka outage: a status (no traceback) while Kafka is down, then recovery by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_local.__main__ import DEFAULT_LIBS
from kafka_local.cluster import LocalCluster
from tests.conftest import fresh_settings
from tests.dashboard.conftest import use_settings
from tests.dashboard.test_pages import metric, open_page, rerun_until

OUTAGE_KAFKA_PORT = 19700  # a broker of this test's own, stopped and restarted under the app


def kafka_error_shown(app) -> bool:
    return any("Kafka is unreachable" in e.value or "Kafka does not answer" in e.value for e in app.error)


def test_monitoring_shows_the_outage_and_recovers_when_kafka_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release_server_objects: None
) -> None:
    cluster = LocalCluster(tmp_path / "kafka", DEFAULT_LIBS)
    spec = cluster.start(nodes=1, base_port=OUTAGE_KAFKA_PORT)
    try:
        use_settings(fresh_settings(spec.bootstrap_servers, tmp_path / "state"), monkeypatch)
        app = open_page("pages/monitoring.py")
        rerun_until(app, lambda app: metric(app, "Brokers") == "1" and not kafka_error_shown(app), timeout=60)

        cluster.stop()
        rerun_until(app, kafka_error_shown, timeout=60)

        cluster.start(nodes=1, base_port=OUTAGE_KAFKA_PORT)
        rerun_until(app, lambda app: metric(app, "Brokers") == "1" and not kafka_error_shown(app), timeout=90)
    finally:
        cluster.stop()
