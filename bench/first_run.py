"""``python -m bench.first_run``: how soon a new user sees the product, measured from ``run.py``'s start.

From a models folder with no model built: (a) the app answers its health check, (b) the first result is on
the results topic (scored by the quick model, built meanwhile), (c) the full model is the one served. Then,
with the models built, from a second start to (d) the first result. The run uses its own Kafka (or the
configured cluster), topics, state and models folder, and writes ``first-run.json`` and ``first-run.md`` to
``--out`` (default: ``docs/benchmarks``). With ``--models-dir`` (models already there) only (a), (b) and (d) are
measured, into ``first-run-models-built.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.environment import bench_kafka, fresh_settings, machine, output_dir
from common.contract import PipelineStatus, SentimentResult
from common.settings import PROJECT_ROOT, Settings
from producer.producer import PostProducer
from producer.sources import synthetic_posts
from sentiment_model import registry

POSTS_PER_SECOND = 5.0
FULL_MODEL_TIMEOUT_S = 3600.0  # the full model's build: about 20 minutes on 2 cores


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
            return bool(response.read() == b"ok")
    except OSError:
        return False


class TopicWatch:
    """Whether anything, or a heartbeat serving a given model, has reached a topic (read from its start)."""

    def __init__(self, settings: Settings, topic: str):
        self._consumer = Consumer(
            {**settings.kafka_client_config(), "group.id": f"bench-first-run-{topic}", "enable.auto.commit": False}
        )
        partitions = self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.values: list[bytes] = []

    def poll(self) -> list[bytes]:
        for message in self._consumer.consume(num_messages=500, timeout=0.2):
            value = message.value()
            if message.error() is None and value is not None:
                self.values.append(value)
        return self.values

    def close(self) -> None:
        self._consumer.close()


def _serves(watch: TopicWatch, model: Path) -> bool:
    for value in watch.poll():
        try:
            if PipelineStatus.model_validate_json(value).model == str(model):
                return True
        except ValueError:
            continue
    return False


def scored_since(values: list[bytes], since: float) -> bool:
    """Whether any of ``values`` is a result scored at or after ``since`` (UNIX time): a result of this run, not
    one a former run left on the topic."""
    for value in values:
        try:
            if SentimentResult.model_validate_json(value).processed_at >= since:
                return True
        except ValueError:
            continue
    return False


def _until(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float, what: str, started: float
) -> float:
    """Seconds from ``started`` until ``condition`` holds (polled), or fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"run.py exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)
    return round(time.monotonic() - started, 1)


def _start(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    environment = settings.child_environment()
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "run.py", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in its terminal
    try:
        process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _run_once(settings: Settings, port: int, log: Path, first: bool, figures: dict[str, Any]) -> None:
    """Start ``run.py``, time what a user waits for (first run: the app, the first result, the full model unless
    the models were built beforehand; second run: the first result), then stop it as Ctrl-C does."""
    results = TopicWatch(settings, settings.topic_results)
    status = TopicWatch(settings, settings.topic_pipeline_status)
    # Posts arrive from the start, as from a user's source (the app's own producer starts only when a browser
    # opens it).
    posts = PostProducer(settings, synthetic_posts(), rate=POSTS_PER_SECOND, stats_interval=None)
    started, started_at = time.monotonic(), time.time()
    product = _start(settings, port, log)
    posts.start()
    try:

        def new_result() -> bool:
            return scored_since(results.poll(), started_at)

        if not first:
            figures["models_built_first_result_seconds"] = _until(new_result, product, 300, "a result", started)
            return
        figures["app_healthy_seconds"] = _until(lambda: _health(port), product, 120, "the app", started)
        figures["first_result_seconds"] = _until(new_result, product, 900, "the first result", started)
        if not figures["models_prebuilt"]:
            full = registry.model_path(settings.models_dir, registry.FULL_MODEL)
            figures["full_model_active_seconds"] = _until(
                lambda: _serves(status, full), product, FULL_MODEL_TIMEOUT_S, "the full model", started
            )
    finally:
        posts.stop(timeout=30)
        _stop(product)
        results.close()
        status.close()


def measure(servers: str, models_dir: Path | None, work: Path) -> dict[str, Any]:
    """The figures of one first run (and one second run) against ``servers``."""
    settings = fresh_settings(servers, models_dir=models_dir or work / "models", model="auto")
    with socket.socket() as probe:  # a port free now, for the app
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    figures: dict[str, Any] = {"models_prebuilt": models_dir is not None}
    _run_once(settings, port, work / "first-run.log", True, figures)
    _run_once(settings, port, work / "second-run.log", False, figures)
    return figures


def markdown(run: dict[str, Any]) -> str:
    figures = run["figures"]
    rows = [
        ("app answers its health check", figures.get("app_healthy_seconds")),
        ("first result on the results topic", figures.get("first_result_seconds")),
        ("full model served", figures.get("full_model_active_seconds")),
        ("with the models built: first result", figures.get("models_built_first_result_seconds")),
    ]
    lines = [
        "# First run",
        "",
        f"Measured {run['date']} by `python -m bench.first_run` on {run['machine']['cores']} cores "
        f"({run['machine']['cpu']}); seconds from `run.py`'s start, its Kafka already running"
        + (" (models built beforehand)." if run["figures"]["models_prebuilt"] else ", no model built."),
        "",
        "| from `run.py` start to | seconds |",
        "| --- | ---: |",
        *(f"| {what} | {seconds if seconds is not None else 'not measured'} |" for what, seconds in rows),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.first_run", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, help="models already built (measures (a), (b) and (d) only)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    with bench_kafka() as servers, tempfile.TemporaryDirectory(prefix="sentistream-first-run-") as work:
        figures = measure(servers, args.models_dir, Path(work))
    run = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "figures": figures}
    out = output_dir(str(args.out))
    stem = "first-run-models-built" if args.models_dir else "first-run"  # one run of each kind is kept
    (out / f"{stem}.json").write_text(json.dumps(run, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(run))
    print(markdown(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
