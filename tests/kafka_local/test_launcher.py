"""The launcher against real Kafka: lifecycle through its CLI, data kept across restarts, clear errors."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from common.settings import PROJECT_ROOT, Settings
from kafka_local.__main__ import DEFAULT_LIBS
from kafka_local.cluster import KafkaLauncherError, LocalCluster, check_java, fetch_jars, new_cluster_id
from tests.conftest import LAUNCHER_PORT
from tests.topic_reader import read_all


def launcher(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SENTISTREAM_BOOTSTRAP_SERVERS"}
    return subprocess.run(
        [sys.executable, "-m", "kafka_local", "--home", str(home), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_start_status_stop_and_restart_keeps_data(tmp_path: Path, launcher_port: int) -> None:
    home = tmp_path / "cluster"
    started = launcher(home, "start", "--port", str(launcher_port))
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{launcher_port}" in started.stdout
    try:
        status = launcher(home, "status")
        assert status.returncode == 0 and "running" in status.stdout

        settings = Settings(bootstrap_servers=f"127.0.0.1:{launcher_port}")
        producer = Producer(settings.kafka_client_config())
        producer.produce(settings.topic_posts, key=b"k", value=b"survives a restart")
        assert producer.flush(10) == 0
        cluster_id = (home / "cluster.json").read_text()

        stopped = launcher(home, "stop")
        assert stopped.returncode == 0 and "[1]" in stopped.stdout
        assert launcher(home, "status").returncode == 3  # configured, nothing running

        restarted = launcher(home, "start", "--port", str(launcher_port))
        assert restarted.returncode == 0, restarted.stderr
        assert (home / "cluster.json").read_text() == cluster_id
        values = [m.value() for m in read_all(settings, settings.topic_posts)]
        assert values == [b"survives a restart"]
    finally:
        launcher(home, "stop")
    assert launcher(home, "status").returncode == 3


def test_start_refuses_a_taken_port_with_a_clear_error(tmp_path: Path, launcher_port: int) -> None:
    taken = launcher_port + 1  # not the one a test before may have just closed (TIME_WAIT)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        result = launcher(tmp_path, "start", "--port", str(taken))
    assert result.returncode == 2
    assert f"Port {taken} on 127.0.0.1 is already taken" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broker_that_does_not_come_up_in_time_reports_its_log(tmp_path: Path, launcher_port: int) -> None:
    cluster = LocalCluster(tmp_path, DEFAULT_LIBS)
    try:
        with pytest.raises(KafkaLauncherError, match=r"did not serve within 0 s. Last lines of .*kafka.log"):
            cluster.start(base_port=launcher_port + 2, timeout=0.01)
    finally:
        cluster.stop(kill=True)


def test_a_different_cluster_shape_in_the_same_home_is_refused(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, DEFAULT_LIBS)
    cluster.configure(nodes=1, base_port=LAUNCHER_PORT)
    with pytest.raises(KafkaLauncherError, match="holds a 1-node cluster"):
        cluster.configure(nodes=3, base_port=LAUNCHER_PORT)


def _fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_missing_java_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match="Java is not installed"):
        check_java()


def test_old_java_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path, "java", """echo 'openjdk version "11.0.22" 2024-01-16' >&2""")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match=r"Java 11 found .* needs Java 17 or newer"):
        check_java()


def test_missing_maven_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match="Maven is not installed"):
        fetch_jars(tmp_path / "libs")


def test_cluster_ids_follow_kafkas_format() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") and "=" not in i for i in ids)


def test_an_external_cluster_setting_makes_start_a_no_op(tmp_path: Path, kafka_cluster) -> None:
    env = {**os.environ, "SENTISTREAM_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers}
    result = subprocess.run(
        [sys.executable, "-m", "kafka_local", "--home", str(tmp_path), "start", "--no-topics"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "starting nothing" in result.stdout
    assert not (tmp_path / "cluster.json").exists()
