"""Messages that crash a worker again and again: pinned down one at a time, then set aside.

Validation, size checks and the model's batch splitting handle every failure we know of. This is for the
ones we do not: a defect that kills the worker process on some message would otherwise replay that
message, and kill the worker, forever. After such a crash the supervisor restarts the worker in careful
mode: one message per checkpoint, each one noted in the worker's in-flight file before it is processed.
(Outside careful mode the sink notes each batch before the model scores it.) The supervisor counts a
crash against every message noted in flight when it happened, in the ledger: in careful mode that is one
message. A message that has crashed workers ``poison_crash_limit`` times is dead-lettered
(``poison_message``) by the next worker instead of processed, and the stream moves on; the others of its
batch, counted once, are scored in careful mode without trouble.

The ledger and the in-flight files are local files in the state directory: each host counts its own
crashes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.contract import RejectReason
from pipeline.definition import Rejected
from pipeline.outputs import Source

logger = logging.getLogger(__name__)

# Ledger entries older than this are dropped: their messages were dealt with long ago.
LEDGER_RETENTION_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Crash:
    crashes: int
    last_error: str
    at: float


class Ledger:
    """Crashes per message id, in a JSON file shared by the workers of one consumer group on this host."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _read(self) -> dict[str, Crash]:
        try:
            entries = json.loads(self.path.read_text())
            return {message: Crash(**entry) for message, entry in entries.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:  # a torn or foreign file must not stop the pipeline
            logger.warning("Ignoring an unreadable poison ledger %s: %s", self.path, exc)
            return {}

    def entries(self) -> dict[str, Crash]:
        with self._locked():
            return self._read()

    def record_crash(self, message: str, error: str) -> int:
        """Count one more crash on ``message``; returns its crashes so far."""
        with self._locked():
            entries = self._read()
            now = time.time()
            entries = {m: c for m, c in entries.items() if now - c.at < LEDGER_RETENTION_SECONDS}
            crashes = entries[message].crashes + 1 if message in entries else 1
            entries[message] = Crash(crashes, error, now)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps({m: vars(c) for m, c in entries.items()}))
            os.replace(temporary, self.path)
            return crashes


class InFlight:
    """What a worker is processing, noted before it starts on it: the batch it scores, or in careful mode
    the one message it processes."""

    def __init__(self, path: Path):
        self.path = path

    def note(self, messages: list[str]) -> None:
        self.path.write_text("\n".join(messages))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def take(self) -> list[str]:
        """The messages noted last (and forget them): what the worker was on when it died."""
        try:
            messages = self.path.read_text().split("\n")
        except FileNotFoundError:
            return []
        self.path.unlink(missing_ok=True)
        return [message for message in messages if message]


class PoisonGate:
    """First step for every raw message: poison is dead-lettered; in careful mode, note the message in flight."""

    def __init__(self, ledger: Ledger, crash_limit: int, in_flight: InFlight | None = None):
        self._poisoned = {message: crash for message, crash in ledger.entries().items() if crash.crashes >= crash_limit}
        self._in_flight = in_flight
        if self._poisoned:
            logger.info("%d message(s) set aside as poison: %s", len(self._poisoned), ", ".join(sorted(self._poisoned)))

    def check(self, source: Source) -> Rejected | None:
        message = source.message_id
        crash = self._poisoned.get(message)
        if crash is not None:
            detail = f"crashed a worker {crash.crashes} times; last: {crash.last_error}"
            return Rejected(RejectReason.POISON_MESSAGE, detail, source)
        if self._in_flight is not None:
            self._in_flight.note([message])
        return None
