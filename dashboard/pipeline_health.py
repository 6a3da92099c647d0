"""What the pipeline supervisors' heartbeats say: running, crash-looping, restarting, stopped, or not running.

Each supervisor writes a ``PipelineStatus`` to the status topic every ``interval_seconds`` (key: its instance
id); a clean stop sends a last one with ``stopping=True``. A heartbeat older than GONE_AFTER_INTERVALS
intervals means its supervisor is gone. Anyone can write to the topic: what does not parse is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from common.contract import PipelineStatus, WorkerState, WorkerStatus
from pipeline.instance import WorkerIdentity

logger = logging.getLogger(__name__)

GONE_AFTER_INTERVALS = 3
MAX_SUPERVISORS = 100  # remembered; every supervisor start is a new instance id


class PipelineState(StrEnum):
    RUNNING = "running"
    WAITING_FOR_MODEL = "waiting_for_model"  # live, but no classifier runs: no model to load yet (posts wait)
    CRASH_LOOPING = "crash_looping"
    RESTARTING = "restarting"
    STOPPED = "stopped"  # its supervisor said so: a clean stop
    NOT_RUNNING = "not_running"  # no live supervisor and no member in the consumer group


@dataclass(frozen=True)
class TroubledWorker:
    supervisor: PipelineStatus
    worker: WorkerStatus


@dataclass(frozen=True)
class PipelineHealth:
    state: PipelineState
    workers: int  # classifier workers running: from the heartbeats, else the consumer group's members
    lingering: int  # members of the group whose supervisor stopped them: Kafka drops them after their session
    troubled: tuple[TroubledWorker, ...]  # crash-looping workers first, then restarting ones
    # The live supervisors; when none is live, the one that reported last (what it said before it went).
    supervisors: tuple[PipelineStatus, ...]
    live: bool  # ``supervisors`` are live

    @property
    def waiting_for_model(self) -> tuple[str, ...]:
        """Why live supervisors run no classifier yet (one reason per supervisor that waits)."""
        if not self.live:
            return ()
        return tuple(status.waiting_for_model for status in self.supervisors if status.waiting_for_model)

    @property
    def served_models(self) -> tuple[str, ...]:
        """What the live supervisors' classifiers serve (paths or pretrained names), each once, in order."""
        if not self.live:
            return ()
        return tuple(dict.fromkeys(status.model for status in self.supervisors if status.model))


def is_live(status: PipelineStatus, now: float) -> bool:
    return not status.stopping and now - status.sent_at <= GONE_AFTER_INTERVALS * status.interval_seconds


def interpret(heartbeats: Iterable[PipelineStatus], members: Collection[str | None], now: float) -> PipelineHealth:
    """The pipeline's state from its supervisors' latest heartbeats and its consumer group's members.

    ``members`` are the group's members by their group.instance.id (None for a member without one).
    """
    known = list(heartbeats)
    # A cleanly stopped worker stays a (static) member of the group until its session times out.
    stopped_slots = {
        WorkerIdentity(status.instance, worker.role, worker.slot).member
        for status in known
        if status.stopping
        for worker in status.workers
    }
    lingering = sum(member in stopped_slots for member in members)
    active = len(members) - lingering
    live = sorted((status for status in known if is_live(status, now)), key=lambda status: status.started_at)
    if live:
        workers = [TroubledWorker(status, worker) for status in live for worker in status.workers]
        looping = [item for item in workers if item.worker.state is WorkerState.CRASH_LOOPING]
        restarting = [item for item in workers if item.worker.state is WorkerState.RESTARTING]
        running = [item.worker for item in workers if item.worker.state is WorkerState.RUNNING]
        classifiers = sum(worker.role == "classify" for worker in running)
        if looping:
            state = PipelineState.CRASH_LOOPING
        elif restarting:
            state = PipelineState.RESTARTING
        elif not classifiers and any(status.waiting_for_model for status in live):
            state = PipelineState.WAITING_FOR_MODEL
        else:
            state = PipelineState.RUNNING if running else PipelineState.STOPPED
        return PipelineHealth(state, classifiers, lingering, tuple(looping + restarting), tuple(live), live=True)
    latest = max(known, key=lambda status: status.sent_at, default=None)
    last_words = (latest,) if latest is not None else ()
    if active:  # workers without a reporting supervisor: started on their own, or their supervisor was killed
        return PipelineHealth(PipelineState.RUNNING, active, lingering, (), last_words, live=False)
    stopped = latest is not None and latest.stopping
    return PipelineHealth(
        PipelineState.STOPPED if stopped else PipelineState.NOT_RUNNING, 0, lingering, (), last_words, live=False
    )


class Heartbeats:
    """The latest valid heartbeat of each supervisor of one consumer group, fed the status topic's records in order."""

    def __init__(self, consumer_group: str):
        self.consumer_group = consumer_group
        self._latest: dict[str, PipelineStatus] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: compaction's way of forgetting that supervisor
            if key is not None:
                self._latest.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            status = PipelineStatus.model_validate_json(value)
        except ValidationError as exc:
            logger.debug(
                "Ignoring a record on the status topic that is not a PipelineStatus: %s", exc.errors()[0]["msg"]
            )
            return
        if status.consumer_group != self.consumer_group:
            return
        self._latest[status.instance] = status
        if len(self._latest) > MAX_SUPERVISORS:
            oldest = min(self._latest.values(), key=lambda known: known.sent_at)
            del self._latest[oldest.instance]

    def latest(self) -> list[PipelineStatus]:
        return list(self._latest.values())
