"""The pipeline's state from its supervisors' heartbeats: running, crash-looping, restarting, stopped, gone."""

from __future__ import annotations

import time

from common.contract import WorkerState
from dashboard.pipeline_health import Heartbeats, PipelineState, interpret
from dashboard.widgets import no_results_hint
from tests.dashboard.heartbeats import heartbeat, worker


def test_live_supervisors_with_running_workers_mean_running_with_their_classifier_count() -> None:
    first = heartbeat(worker(0), worker(1), worker(2, role="stats"))
    second = heartbeat(worker(0))
    health = interpret([first, second], members=[], now=time.time())  # not joined yet (the model loads): still running
    assert (health.state, health.workers, health.live) == (PipelineState.RUNNING, 3, True)
    assert {status.instance for status in health.supervisors} == {first.instance, second.instance}


def test_one_crash_looping_worker_makes_the_pipeline_crash_looping_and_names_it() -> None:
    looping = worker(
        1,
        WorkerState.CRASH_LOOPING,
        restarts=4,
        last_error="ValueError: boom",
        stuck_at="posts.raw[3]@1234",
        careful=True,
    )
    restarting = worker(2, WorkerState.RESTARTING, restarts=1)
    health = interpret([heartbeat(worker(0), looping, restarting)], members=["host-0-classify-0"], now=time.time())
    assert health.state is PipelineState.CRASH_LOOPING
    assert [item.worker for item in health.troubled] == [looping, restarting]  # the crash loop first
    assert health.workers == 1


def test_a_restarting_worker_alone_means_restarting() -> None:
    health = interpret([heartbeat(worker(0, WorkerState.RESTARTING, restarts=1))], members=[], now=time.time())
    assert health.state is PipelineState.RESTARTING and health.workers == 0


def test_a_clean_stop_means_stopped_and_a_silent_supervisor_is_gone() -> None:
    now = time.time()
    stopped = heartbeat(worker(0, WorkerState.STOPPED), stopping=True, age=1)
    assert interpret([stopped], members=[], now=now).state is PipelineState.STOPPED
    # Three intervals without a heartbeat: the supervisor is gone (killed, host down), not stopped.
    gone = heartbeat(worker(0), age=16, interval=5)
    health = interpret([gone], members=[], now=now)
    assert (health.state, health.live, health.supervisors) == (PipelineState.NOT_RUNNING, False, (gone,))
    assert interpret([heartbeat(worker(0), age=14, interval=5)], members=[], now=now).state is PipelineState.RUNNING
    # The newest word counts: a supervisor that stopped after another one vanished.
    assert interpret([gone, stopped], members=[], now=now).state is PipelineState.STOPPED
    # Its stopped workers stay in the group (static members) until their session times out: they run no more.
    stopped = heartbeat(worker(0, WorkerState.STOPPED), instance="host-0", stopping=True, age=1)
    health = interpret([stopped], members=["host-0-classify-0"], now=now)
    assert (health.state, health.lingering) == (PipelineState.STOPPED, 1)
    assert (
        interpret([stopped], members=["host-0-classify-0", "elsewhere-0-classify-0"], now=now).state
        is PipelineState.RUNNING
    )


def test_without_heartbeats_the_consumer_group_tells() -> None:
    assert interpret([], members=[], now=time.time()).state is PipelineState.NOT_RUNNING
    health = interpret(
        [heartbeat(worker(0), age=600)], members=["a-classify-0", None], now=time.time()
    )  # workers of their own
    assert (health.state, health.workers) == (PipelineState.RUNNING, 2)


def test_heartbeats_keep_the_latest_per_supervisor_of_the_group_and_ignore_the_rest() -> None:
    book = Heartbeats("sentiment-pipeline")
    old = heartbeat(worker(0), instance="a", age=10)
    new = heartbeat(worker(0, WorkerState.CRASH_LOOPING), instance="a")
    other = heartbeat(worker(0), instance="b")
    for value in (
        old.to_bytes(),
        b"{not json",
        b'{"instance": "x"}',
        b"\xff\xfe",
        new.to_bytes(),
        other.to_bytes(),
        heartbeat(worker(0), group="someone-else").to_bytes(),
    ):
        book.add(b"key", value)
    assert {status.instance: status for status in book.latest()} == {"a": new, "b": other}
    book.add(b"b", None)  # a tombstone forgets a supervisor
    assert [status.instance for status in book.latest()] == ["a"]


def test_the_live_page_hint_for_no_results_follows_what_the_user_waits_for() -> None:
    waiting = interpret([heartbeat(worker(0, role="stats"), waiting_for_model="no model built yet")], [], time.time())
    running = interpret([heartbeat(worker(0))], [], time.time())
    assert "waiting for a model" in no_results_hint(waiting, producer_running=True)
    assert "producer is running" in no_results_hint(running, producer_running=True)
    for pipeline in (running, None):  # None: Kafka not read yet
        assert "Start the producer" in no_results_hint(pipeline, producer_running=False)
