"""``make run`` (run.py): the whole product as one command, and one Ctrl-C that stops it without leaving work behind.

Pointed at the session's broker (SENTISTREAM_BOOTSTRAP_SERVERS set), so it starts no Kafka of its own.
"""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from common.contract import Post, SentimentResult
from common.settings import Settings
from common.topics import group_lag
from producer.producer import PostProducer
from producer.sources import synthetic_posts
from sentiment_model import registry
from tests.processes import free_port, running, wait_healthy
from tests.topic_reader import read_all
from tests.waiting import wait_for

# Queued before the product starts, so a backlog is there when Ctrl-C comes, on any machine: the pipeline's
# worker has a model to load and all of these to score, the producer only its last posts to flush.
BACKLOG = 500


@pytest.fixture
def run_settings(settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(update={"model": str(tiny_model_path), "torch_threads": 1})


def signal_from_terminal(process: psutil.Popen, signum: int, timeout: float) -> list[psutil.Process]:
    """``signum`` to run.py alone, as its terminal sends it (SIGINT: Ctrl-C, SIGHUP: terminal closed; its
    children run in sessions of their own); returns the children it had, for the caller to check they are gone."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signum)
    process.wait(timeout=timeout)
    return children


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_ctrl_c_stops_the_producer_first_and_lets_the_pipeline_score_every_post(
    run_settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    queued = PostProducer(run_settings, synthetic_posts(), rate=None, stats_interval=None).run(count=BACKLOG)
    assert queued.delivered == BACKLOG
    # Ctrl-C comes while the worker may still be loading the model: on a loaded box, its start and the backlog
    # can take longer than the default minute of draining.
    with running(
        run_settings, "run", "--no-app", "--rate", "20", "--drain-timeout", "240", log=log, stop_timeout=300
    ) as product:
        wait_for(lambda log=log: "Producing to" in log.read_text(), 60, "the producer to start")
        children = signal_from_terminal(product, signal.SIGINT, timeout=300)
    output = log.read_text()
    assert product.returncode == 0, output[-3000:]
    assert children and not still_running(children)

    posts = [Post.model_validate_json(m.value()) for m in read_all(run_settings, run_settings.topic_posts)]
    results = read_all(run_settings, run_settings.topic_results)
    assert len(posts) > BACKLOG, "the producer sent posts of its own"
    assert {post.id for post in posts} == {SentimentResult.model_validate_json(m.value()).post_id for m in results}
    assert group_lag(run_settings, run_settings.consumer_group, run_settings.topic_posts) == 0
    assert (
        output.index("Producer finished")
        < output.index("Letting the pipeline score the")
        < output.index("Received SIGTERM")
    )


def test_the_app_is_served_and_closing_the_terminal_stops_everything(run_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    with running(run_settings, "run", "--port", str(port), log=log, stop_timeout=150) as product:
        wait_healthy(f"http://127.0.0.1:{port}", product)
        # The app, the pipeline's supervisor and its two workers (classifier and statistics).
        wait_for(
            lambda: len(still_running(psutil.Process(product.pid).children(recursive=True))) == 4,
            60,
            "the app, the supervisor and its two workers",
        )
        children = signal_from_terminal(product, signal.SIGHUP, timeout=150)
    output = log.read_text()
    assert product.returncode == 0, output[-3000:]
    assert f"sentistream is up: open http://127.0.0.1:{port}" in output
    assert len(children) == 4 and not still_running(children)


def build_progress(settings: Settings) -> registry.BuildProgress | None:
    found = [p for p in registry.read_progress(settings.models_dir) if p.name == registry.QUICK_MODEL]
    return found[0] if found else None


def test_with_no_model_the_product_runs_at_once_and_ctrl_c_stops_the_build_which_the_next_run_restarts(
    settings: Settings, tmp_path: Path
) -> None:
    auto = settings.model_copy(update={"model": "auto", "torch_threads": 1})
    for run in (1, 2):
        log = tmp_path / f"run-{run}.log"
        with running(auto, "run", "--no-app", "--rate", "5", log=log, stop_timeout=150) as product:
            building = wait_for(
                lambda: (p := build_progress(auto)) and p.state == "running" and p.is_live() and p,
                120,
                "the quick model's build to run",
            )
            # The product did not wait for the build: the producer and the pipeline run, posts wait in Kafka.
            wait_for(lambda log=log: "Producing to" in log.read_text(), 60, "the producer to start")
            wait_for(lambda log=log: "Waiting for a model" in log.read_text(), 60, "the pipeline to wait")
            children = signal_from_terminal(product, signal.SIGINT, timeout=150)
        assert product.returncode == 0, log.read_text()[-3000:]
        assert not still_running(children), "the build, the pipeline and the producer stopped with run.py"
        stopped = build_progress(auto)
        assert stopped is not None and stopped.state == "stopped" and stopped.pid == building.pid
        assert not list(auto.models_dir.glob("*.pt")) and not list(auto.models_dir.glob("*.partial"))
        assert "Stopped the model build; the next run starts it again" in log.read_text()
        assert group_lag(auto, auto.consumer_group, auto.topic_posts) > 0, "the posts wait for a model"
