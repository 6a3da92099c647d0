"""A worker SIGKILLed at each point of an exactly-once checkpoint: nothing lost, nothing twice, nothing hidden.

Issue 9: a worker that died with its transaction open left it open until the broker timed it out
(``transaction.timeout.ms``, 60 s), because its replacement came with a new random transactional id. Until
then every result written after it on the same partitions, committed or not, was invisible to every
read_committed reader: the group's lag was 0 yet posts had no visible result ("lost"), and the
replacement's offset fetch stalled on the dead transaction's pending offsets. Workers now keep their
slot's transactional id across restarts, so the replacement fences its predecessor and the broker aborts
the dead transaction at once.

Here the kill is placed, not timed: the real pipeline (one worker, the tiny model) runs with fault
injection (``tests/fault_injection``) that SIGKILLs the worker at one point of its third checkpoint with
posts. Once the supervisor's replacement has caught up, the accounting must be exact and complete as a
read_committed reader sees it *at that moment*: no transaction may be left open on the output topics.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.settings import Settings
from producer.producer import PostProducer
from tests.fault_injection import fault_environment
from tests.faults.conftest import MEASUREMENTS
from tests.faults.support import (
    BROKER_CONNECTION_ERRORS,
    account,
    hidden_output,
    log_problems,
    mixed_posts,
    read_all,
    wait_for,
    wait_until_caught_up,
)
from tests.processes import running

POSTS = 400
# (point, whether the killed transaction had already written results the broker must now abort)
POINTS = [
    ("before_flush", False),  # posts gathered, none scored
    ("after_produce", True),  # results in the open transaction, no offsets yet
    ("in_send_offsets", True),  # offsets added to the transaction, not committed
    ("before_commit", True),
    ("after_commit", False),  # committed: the replacement must not score those posts again
]
# What the supervisor logs about the killed worker, and the worker about the injected fault.
KILL_REPORTED = ("killed by SIGKILL", "fault injection")


@pytest.mark.parametrize(("point", "aborts_results"), POINTS)
def test_a_worker_killed_at_a_point_of_its_checkpoint_loses_and_repeats_nothing(
    point: str, aborts_results: bool, fault_settings: Settings, tmp_path: Path
) -> None:
    settings = fault_settings.model_copy(update={"processing_guarantee": "exactly-once"})
    posts = mixed_posts(max_text_chars=settings.max_text_chars)
    delivered = PostProducer(settings, (next(posts) for _ in range(POSTS)), rate=None, stats_interval=None).run()
    assert (delivered.delivered, delivered.failed) == (POSTS, 0)

    fired, log = tmp_path / "fired", tmp_path / "pipeline.log"
    with running(
        settings,
        "pipeline",
        "--workers",
        "1",
        "--no-stats",
        log=log,
        extra_env=fault_environment(f"crash:{point}", fired, at=3),
    ) as pipeline:
        wait_for(fired.exists, 180, f"the worker to be killed at {point}")
        killed_at = time.monotonic()
        caught_up_in = wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=120)
        # Once the group has committed everything, everything must be visible (within seconds, not the 120 s
        # after which the broker aborts a transaction left open).
        hidden = hidden_output(settings)
        assert pipeline.poll() is None
    assert pipeline.returncode == 0, f"SIGTERM must stop the pipeline cleanly; log: {log}"

    accounting = account(settings)
    written = len(read_all(settings, settings.topic_results, isolation="read_uncommitted"))
    aborted = written - sum(accounting.results.values())
    report = (
        f"checkpoint kill, exactly-once, at {point}: {accounting.summary()}; aborted results {aborted}; "
        f"caught up {time.monotonic() - killed_at:.1f} s after the kill ({caught_up_in:.1f} s of waiting)"
    )
    print(report)
    MEASUREMENTS.append(report)

    assert hidden == {settings.topic_results: {}, settings.topic_dead_letters: {}}, (
        f"open transactions hide results from read_committed readers after catch-up: {hidden}"
    )
    accounting.assert_every_post_accounted_for()
    assert accounting.duplicates == 0, accounting.summary()
    assert sum(accounting.produced.values()) == POSTS
    # The kill landed where it was aimed: inside a transaction that had written results, or outside one.
    assert (aborted > 0) == aborts_results, f"{aborted} aborted results after a kill at {point}"
    lines = log.read_text(errors="replace")
    assert all(part in lines for part in KILL_REPORTED), f"no kill reported in {log}"
    assert not log_problems(log, expected=(*BROKER_CONNECTION_ERRORS, *KILL_REPORTED)), f"unexpected errors in {log}"
