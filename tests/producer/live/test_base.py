"""The shared machinery with a scripted network: sessions that end, fail, make progress, or send bad posts."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common.contract import SourceState
from producer.live.base import Connected, Draft, Event, LiveConfig, LiveSource, Position
from tests.producer.live.harness import STATUS_TOPIC, MemoryStore, running
from tests.waiting import wait_for


class Scripted(LiveSource):
    """Each session plays the next script: its events, then the exception in it if any (else it ends)."""

    network = "scripted"

    def __init__(self, scripts: list[list[Event | Exception]], **config: object):
        options = {"status_interval": 0.2, "checkpoint_interval": 0.1, "backoff_initial": 0.1, **config}
        super().__init__(LiveConfig(STATUS_TOPIC, **options))  # type: ignore[arg-type]
        self.scripts = scripts
        self.positions: list[Position] = []

    def session(self, position: Position) -> Iterator[Event]:
        self.positions.append(position)
        script = self.scripts.pop(0) if self.scripts else [Connected("idle")]
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield step
        if not self.scripts:
            while True:  # the last script stays connected
                yield None


def draft(n: int, **fields: object) -> Draft:
    return Draft(
        **{"id": f"scripted:{n}", "author": f"a{n}", "text": f"post {n}", "created_at": 1e9, "position": n, **fields}
    )  # type: ignore[arg-type]


def test_a_session_that_just_ends_is_a_failure_and_backs_off() -> None:
    source = Scripted([[Connected("up")], [Connected("up")], [Connected("up")], [Connected("up"), draft(1)]])
    with running(source) as run:
        run.wait_for_posts(1)
        wait_for(lambda: run.status().failures == 0, 30, "progress to reset the back-off")
    # The first status of each failure (more follow while it waits).
    retrying = list({s.failures: s for s in reversed(run.statuses()) if s.state == SourceState.RETRYING}.values())[::-1]
    assert [s.failures for s in retrying] == [1, 2, 3]
    assert all(s.last_error == "ConnectionError: the network ended the connection" for s in retrying)
    waits = [s.retry_at - s.last_error_at for s in retrying]  # type: ignore[operator]
    assert waits[0] < waits[1] < waits[2]


def test_an_unexpected_error_is_logged_with_its_traceback_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    source = Scripted([[Connected("up"), ZeroDivisionError("a bug")], [Connected("up"), draft(1)]])
    with running(source) as run:
        run.wait_for_posts(1)
    failure = next(r for r in caplog.records if "failed unexpectedly" in r.getMessage())
    assert failure.levelno == logging.ERROR and failure.exc_info is not None
    network = Scripted([[OSError("connection refused")], [Connected("up"), draft(1)]])
    caplog.clear()
    with running(network) as run:
        run.wait_for_posts(1)
    refused = next(r for r in caplog.records if "connection refused" in r.getMessage())
    assert refused.levelno == logging.WARNING and refused.exc_info is None  # a network's failure: one line


def test_each_session_resumes_from_the_last_position() -> None:
    source = Scripted([[Connected("up"), draft(1), draft(2), OSError("dropped")], [Connected("up"), draft(3)]])
    with running(source) as run:
        run.wait_for_posts(3)
    assert source.positions == [None, 2]


def test_a_draft_that_makes_no_valid_post_is_a_bad_frame() -> None:
    source = Scripted([[Connected("up"), draft(1, author="x" * 500), draft(2, created_at=float("inf")), draft(3)]])
    with running(source) as run:
        run.wait_for_posts(1)
        status = wait_for(lambda: run.status().bad_frames == 2 and run.status(), 30, "2 bad frames")
    assert [post.id for post in run.posts()] == ["scripted:3"]
    assert status.state == SourceState.CONNECTED


def test_a_stop_during_a_long_back_off_ends_the_source_at_once() -> None:
    source = Scripted([[OSError("down")]], backoff_initial=600, backoff_max=600)
    # running() stops the source on leaving, and fails unless it ended within 30 s: not after its back-off.
    with running(source) as run:
        run.wait_for_state(SourceState.RETRYING)
    assert run.status().state == SourceState.STOPPED


def test_a_checkpoint_never_names_posts_kafka_has_not_confirmed() -> None:
    store = MemoryStore()
    with (
        pytest.raises(AssertionError, match="Kafka did not confirm"),
        running(Scripted([[Connected("up"), draft(1)]]), store) as run,
    ):
        wait_for(lambda: store.data.get("checkpoint", {}).get("position") == 1, 30, "post 1 in a checkpoint")
        run.producer.undelivered = 1  # Kafka goes away: the stop's checkpoint cannot be confirmed
    # The last checkpoint stands: it says the run did not stop cleanly, so the next start reads back what was sent.
    assert store.data["checkpoint"]["stopped_cleanly"] is False  # type: ignore[index]
