"""What the app does to models, one object of each per server: choose the one the pipeline serves, check that a
Flair pretrained model can be loaded, rebuild one of the product's models.

Nothing here waits on Kafka, the network or a build in a page's rerun: a choice is queued to Kafka and its
outcome read later, a pretrained model is checked in a background thread (the answer kept for a while), and a
build runs as a detached process of its own.
"""

from __future__ import annotations

import itertools
import logging
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from confluent_kafka import KafkaError, Producer

from common.contract import MODEL_CHOICE_KEY, ModelChoice
from common.settings import PROJECT_ROOT, Settings
from sentiment_model import pretrained, registry

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 10.0
CHECK_TTL_SECONDS = 30.0  # how long the answer about a pretrained model holds before it is asked again
REMEMBERED_PUBLICATIONS = 100


# --- the choice of model, on the control topic ----------------------------------------------------


@dataclass(frozen=True)
class Publication:
    """One choice the app sent: pending until Kafka answers (within PUBLISH_TIMEOUT_SECONDS)."""

    choice: ModelChoice
    delivered: bool = False
    error: str | None = None

    @property
    def pending(self) -> bool:
        return not self.delivered and self.error is None


class ChoicePublisher:
    """Thread-safe; one per server. Writes ModelChoice records to the control topic; never waits on Kafka."""

    def __init__(self, settings: Settings, timeout: float = PUBLISH_TIMEOUT_SECONDS):
        self.settings = settings
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._publications: dict[int, Publication] = {}
        self._producer = Producer(
            {
                **settings.kafka_client_config(),
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(timeout * 1000),
                "client.id": "sentistream-dashboard-control",
                "error_cb": lambda error: logger.debug("Control producer: %s", error.str()),
            }
        )

    def publish(self, spec: str, by: str | None = None) -> int:
        """Queue ``spec`` as the model choice; a ticket for :meth:`publication`. Raises ValueError for a spec
        the contract refuses, BufferError when librdkafka's queue is full (Kafka away for long)."""
        choice = ModelChoice(model=spec, chosen_at=time.time(), by=(by or f"app on {socket.gethostname()}")[:200])
        ticket = next(self._tickets)
        with self._lock:
            self._publications[ticket] = Publication(choice)
            while len(self._publications) > REMEMBERED_PUBLICATIONS:
                del self._publications[next(iter(self._publications))]
        self._producer.produce(
            self.settings.topic_pipeline_control,
            choice.to_bytes(),
            MODEL_CHOICE_KEY,
            on_delivery=lambda error, _message: self._delivered(ticket, error),
        )
        self._producer.poll(0)
        logger.info("Model choice %r sent to %s", spec, self.settings.topic_pipeline_control)
        return ticket

    def publication(self, ticket: int) -> Publication | None:
        self._producer.poll(0)  # runs the delivery callbacks that are due, without waiting
        with self._lock:
            return self._publications.get(ticket)

    def close(self, timeout: float = 5.0) -> None:
        self._producer.flush(timeout)

    def _delivered(self, ticket: int, error: KafkaError | None) -> None:
        with self._lock:
            known = self._publications.get(ticket)
            if known is None:
                return
            if error is None:
                self._publications[ticket] = Publication(known.choice, delivered=True)
            else:
                logger.warning("Model choice %r not delivered: %s", known.choice.model, error.str())
                self._publications[ticket] = Publication(known.choice, error=error.str())


# --- can a Flair pretrained model be loaded here? ---------------------------------------------------


@dataclass(frozen=True)
class Availability:
    checking: bool  # no answer yet
    problem: str | None  # why it cannot be loaded here (None: it can, or no answer yet)
    checked_at: float | None


class PretrainedChecker:
    """Thread-safe; one per server. Asks ``pretrained.pretrained_unavailable`` in a background thread, at most one
    question per name at a time, and keeps the answer for ``ttl`` seconds: a page never waits for the network."""

    def __init__(self, ttl: float = CHECK_TTL_SECONDS):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, str | None]] = {}
        self._asking: set[str] = set()

    def availability(self, name: str) -> Availability:
        """What is known about ``name`` now; starts a check when there is no fresh answer."""
        now = time.time()
        with self._lock:
            answer = self._answers.get(name)
            fresh = answer is not None and now - answer[0] < self.ttl
            if not fresh and name not in self._asking:
                self._asking.add(name)
                threading.Thread(target=self._check, args=(name,), name=f"pretrained-check-{name}", daemon=True).start()
            if answer is None:
                return Availability(True, None, None)
            return Availability(not fresh, answer[1], answer[0])

    def _check(self, name: str) -> None:
        try:
            problem = pretrained.pretrained_unavailable(name)
        except Exception as exc:  # a surprise must not leave the name "checking" for ever
            logger.exception("Checking Flair model %r failed", name)
            problem = f"the check failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self._answers[name] = (time.time(), problem)
            self._asking.discard(name)


# --- rebuilding a model -------------------------------------------------------------------------


def console_path(models_dir: Path, name: str) -> Path:
    """Where a rebuild started from the app writes its terminal output (its progress bar, and what it says before
    its own log, ``registry.log_path``, is open). Not the log itself: the build writes every log line there, and
    starts it afresh."""
    return models_dir / f"{name}.build.out"


class BuildLauncher:
    """Thread-safe; one per server. Starts ``python -m sentiment_model.build --profile <p> --force`` for one of the
    product's models as a detached process (its own session: it outlives the app). The build writes its log
    (``registry.log_path``) itself; its terminal output goes to :func:`console_path`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.RLock()  # rebuild() asks running() while it holds it
        self._started: dict[str, subprocess.Popen[bytes]] = {}

    def command(self, profile: str) -> list[str]:
        return [sys.executable, "-m", "sentiment_model.build", "--profile", profile, "--force"]

    def running(self, name: str) -> bool:
        """A build of ``name`` runs: one this server started and has not ended, or one whose progress is live."""
        with self._lock:
            process = self._started.get(name)
            if process is not None and process.poll() is not None:  # ended: reaped here
                del self._started[name]
                process = None
        if process is not None:
            return True
        return any(p.name == name and p.is_live() for p in registry.read_progress(self.settings.models_dir))

    def rebuild(self, name: str) -> int:
        """Start a rebuild of ``name`` (a key of ``registry.PROFILE_OF``); its pid. Raises ValueError when it cannot."""
        profile = registry.PROFILE_OF.get(name)
        if profile is None:
            raise ValueError(f"{name} is not one of the product's models ({', '.join(registry.PROFILE_OF)})")
        with self._lock:
            if self.running(name):
                raise ValueError(f"a build of {name} is running already: wait for it to end")
            console = console_path(self.settings.models_dir, name)
            console.parent.mkdir(parents=True, exist_ok=True)
            with open(console, "wb") as out:
                out.write(f"rebuild of {name} started from the app at {time.ctime()}\n".encode())
                out.flush()
                process = self._spawn(self.command(profile), out)
            self._started[name] = process
        logger.info(
            "Rebuild of %s started (pid %d): log in %s, terminal output in %s",
            name,
            process.pid,
            registry.log_path(self.settings.models_dir, name),
            console,
        )
        return process.pid

    def _spawn(self, command: list[str], out: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=self.settings.child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the server's process group: a Ctrl-C of the app does not stop it
        )


def log_tail(path: Path, lines: int = 40, max_bytes: int = 64 * 1024) -> str | None:
    """The last ``lines`` lines of a log (read from its last ``max_bytes``), None if there is no log."""
    try:
        with open(path, "rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(size - max_bytes, 0))
            data = log.read()
    except OSError:
        return None
    # A progress bar redraws its line after a carriage return: keep what a terminal would show, the last one.
    text = data.decode("utf-8", "replace")
    kept = [shown for line in text.split("\n") if (shown := line.rstrip("\r").rsplit("\r", 1)[-1]).strip()]
    if size > max_bytes and kept:
        kept = kept[1:]  # the first line read is likely cut
    return "\n".join(kept[-lines:])
