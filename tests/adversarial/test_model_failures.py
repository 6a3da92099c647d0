"""The real pipeline with a model that fails on marked posts: the failure costs those posts, not the stream.

Fault injection (``tests/fault_injection``) wraps the real tiny Flair model's forward pass in the worker
process: it raises on any batch holding a marked post, or kills the process as a native crash would.
A raising model is handled inside the worker: the batch is split until the marked posts stand alone, and
those are dead-lettered (``model_error``) while the rest are scored. A crashing one is handled by the
supervisor: careful mode pins the crash to the marked post, and after ``poison_crash_limit`` crashes it is
dead-lettered (``poison_message``). Either way every post ends up as exactly one result or dead letter.
"""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest

from common.contract import DeadLetter, PipelineStatus, Post, RejectReason, SentimentResult, WorkerState
from common.settings import Settings
from tests.fault_injection import fault_environment
from tests.faults.support import (
    log_problems,
    pipeline_workers,
    read_all,
    wait_for,
    wait_until_caught_up,
)
from tests.processes import running
from tests.topic_writer import send_posts

MARK = "MARKED-FOR-FAILURE"
TEXTS = ["I love this so much", "This is awful and broken", "The bus comes at nine", "Best day ever!!!"]


@pytest.fixture
def model_settings(settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "model": str(tiny_model_path),
            "batch_size": 16,
            "batch_max_wait_ms": 50,
            "status_interval_seconds": 1.0,
        }
    )


def posts_with_marks(count: int, marked: set[int]) -> list[Post]:
    return [
        Post(author=f"author-{i % 7}", source="test", text=f"{TEXTS[i % 4]} {MARK}" if i in marked else TEXTS[i % 4])
        for i in range(count)
    ]


def outcomes(settings: Settings) -> tuple[Counter[str], dict[str, DeadLetter]]:
    results = Counter(
        SentimentResult.model_validate_json(m.value()).post_id for m in read_all(settings, settings.topic_results)
    )
    letters = [DeadLetter.model_validate_json(m.value()) for m in read_all(settings, settings.topic_dead_letters)]
    return results, {Post.model_validate_json(base64.b64decode(letter.payload_base64)).id: letter for letter in letters}


def test_a_model_raising_on_some_posts_dead_letters_only_those_and_no_worker_restarts(
    model_settings: Settings, tmp_path: Path
) -> None:
    settings = model_settings
    marked = {5, 6, 40, 77, 130}
    posts = posts_with_marks(160, marked)
    log = tmp_path / "pipeline.log"
    send_posts(settings, posts)  # a backlog: the model sees full batches, the marked posts in their middle
    with running(
        settings,
        "pipeline",
        "--workers",
        "1",
        "--no-stats",
        log=log,
        extra_env=fault_environment(f"model_raises:{MARK}", tmp_path / "fired"),
    ) as pipeline:
        workers = wait_for(lambda: pipeline_workers(pipeline) or None, 30, "the worker")
        wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=180)
        assert pipeline_workers(pipeline) == workers, f"a worker restarted; log: {log}"

    results, letters = outcomes(settings)
    assert set(letters) == {posts[i].id for i in marked}
    assert {(letter.reason, letter.detail) for letter in letters.values()} == {
        (RejectReason.MODEL_ERROR, f"RuntimeError: injected model failure on a text containing {MARK!r}")
    }
    assert results == Counter(post.id for i, post in enumerate(posts) if i not in marked)
    assert not log_problems(log), f"errors logged: {log_problems(log)[:3]}"


def test_a_post_that_crashes_the_worker_is_set_aside_after_the_crash_limit(
    model_settings: Settings, tmp_path: Path
) -> None:
    settings = model_settings
    marked = 50
    posts = posts_with_marks(120, {marked})
    log = tmp_path / "pipeline.log"
    send_posts(settings, posts)
    with running(
        settings,
        "pipeline",
        "--workers",
        "1",
        "--no-stats",
        log=log,
        extra_env=fault_environment(f"model_crashes:{MARK}", tmp_path / "fired"),
    ):
        wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=300)
        heartbeats = wait_for(lambda: back_to_batches(statuses(settings)), 120, "the worker to score in batches again")

    results, letters = outcomes(settings)
    [letter] = letters.values()
    assert letter.reason is RejectReason.POISON_MESSAGE and letter.offset == poison_offset(settings, posts[marked])
    limit = settings.poison_crash_limit
    assert letter.detail == f"crashed a worker {limit} times; last: killed by SIGABRT"
    assert set(letters) == {posts[marked].id}
    assert results == Counter(post.id for i, post in enumerate(posts) if i != marked)

    stuck_at = f"{settings.topic_posts}[{letter.partition}]@{letter.offset}"
    worker = heartbeats[-1].workers[0]
    assert (worker.restarts_total, worker.poisoned, worker.stuck_at, worker.last_exit) == (
        limit,
        1,
        stuck_at,
        "killed by SIGABRT",
    )
    assert any(beat.workers[0].careful for beat in heartbeats), "careful mode is reported"
    assert any(beat.workers[0].state is WorkerState.CRASH_LOOPING for beat in heartbeats), "the crash loop is reported"
    text = log.read_text(errors="replace")
    assert text.count("ended, killed by SIGABRT; restarting") == limit
    assert f"{stuck_at} crashed a worker {limit} times" in text


def back_to_batches(heartbeats: list[PipelineStatus]) -> list[PipelineStatus] | None:
    """The heartbeats so far, once the last says the poison is set aside and a worker runs out of careful mode."""
    worker = heartbeats[-1].workers[0] if heartbeats else None
    return heartbeats if worker is not None and worker.poisoned and worker.pid and not worker.careful else None


def statuses(settings: Settings) -> list[PipelineStatus]:
    return [PipelineStatus.model_validate_json(m.value()) for m in read_all(settings, settings.topic_pipeline_status)]


def poison_offset(settings: Settings, post: Post) -> int:
    [message] = [
        m for m in read_all(settings, settings.topic_posts) if Post.model_validate_json(m.value()).id == post.id
    ]
    return message.offset()
