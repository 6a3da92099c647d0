"""Who a worker is: its supervisor's instance (the host's name and the lowest number no other live supervisor
holds) and its slot there.

Its workers' transactional ids derive from it, so they must be unique among live processes (two
producers with one id fence each other) yet the same after a restart (so that the new producer fences
the old one's open transaction at once). A lock file per number, held for the supervisor's lifetime and
released by the kernel when it dies, gives both.
"""

from __future__ import annotations

import fcntl
import itertools
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from common.contract import WorkerRole


class Instance:
    def __init__(self, name: str, lock: IO[str]):
        self.name = name
        self._lock = lock

    def release(self) -> None:
        self._lock.close()


def claim_instance(state_dir: Path, consumer_group: str) -> Instance:
    directory = state_dir / "instances"
    directory.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for number in itertools.count():
        lock = open(directory / f"{consumer_group}-{number}.lock", "w")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return Instance(f"{host}-{number}", lock)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class WorkerIdentity:
    """Which worker this is: its supervisor's instance (stable on this host) and its slot there."""

    instance: str
    role: WorkerRole
    slot: int

    @property
    def member(self) -> str:
        """Its name in the consumer group and in its transactional id: the same after a restart."""
        return f"{self.instance}-{self.role}-{self.slot}"
