"""What every live source shares: a Quix Streams ``StatefulSource`` that sends a network's posts to the raw topic.

A network's source subclasses :class:`LiveSource`, names its ``network`` and implements one method,
:meth:`LiveSource.session`: a generator that connects (resuming after ``position``), yields :class:`Connected`
once it is, then an event for each thing it receives (:class:`Draft`, :class:`Passed`, :class:`BadFrame`) and
``None`` at least every second while nothing comes, and raises when the connection fails or drops. The base
class does the rest, in the source's own process (``Application.add_source``):

* de-duplication by the network's post id (the last ``remembered_ids`` ids), then the language and keyword
  filters, then the post to the raw topic: key = author, value = the ``Post`` JSON;
* the resume point: the ``position`` of the last event and the remembered ids, saved in the source's Quix state
  every ``checkpoint_interval`` seconds together with a flush of the producer, and read back when the source
  starts again, so a restart or a reconnect resumes where it was and sends no post twice (after a crash, the
  posts sent since the last checkpoint are read back from the raw topic: :mod:`producer.live.recall`);
* reconnection with exponential back-off (:class:`~producer.live.backoff.Backoff`; a network's
  :class:`RetryAfter` waits at least as long as it asks), reset once the connection makes progress;
* the status (:class:`~common.contract.SourceStatus`: state, last error, counters, posts/s) on the source status
  topic, key = the source's name, every ``status_interval`` seconds and at once on each change of state.

Everything runs on the source process's main thread, so there is no queue between the network and Kafka: a slow
Kafka slows the reading, and the network client's own receive buffer (bounded) holds what waits.
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, TypeAlias

from confluent_kafka import KafkaException
from pydantic import ValidationError
from quixstreams.sources import StatefulSource

from common.contract import Post, SourceState, SourceStatus
from common.logs import configure_logging
from common.settings import Settings
from producer.live.backoff import Backoff
from producer.live.filters import KeywordFilter, LanguageFilter, comma_list
from producer.live.recall import sent_post_ids
from producer.live.recent import RecentIds
from producer.producer import _QuietWarnings
from producer.rate import RateMeter

logger = logging.getLogger(__name__)

# Where a network resumes, in its own terms (a time cursor, the last post id...): anything JSON can hold.
Position: TypeAlias = str | int | float | dict[str, object] | list[object] | None
STATE_KEY = "checkpoint"
IDLE_TICK = 1.0  # seconds: how often a waiting source looks at its timers and at a stop request
PREVIEW_CHARS = 200
MAX_ID_CHARS = 128  # Post.id's limit
RECALL_MARGIN = 5.0  # seconds: Kafka timestamps and the checkpoint's time come from different clocks


@dataclass(frozen=True)
class Connected:
    """The session is connected; ``detail`` says to what and how, for the status."""

    detail: str


@dataclass(frozen=True)
class Draft:
    """A post as the network gave it, before de-duplication and the filters.

    ``id`` is the network's own stable id (the same post always has the same id); ``languages`` the BCP-47
    tags the network gives (empty: unknown); ``position`` where to resume after it (None: unchanged).
    """

    id: str
    author: str
    text: str
    created_at: float
    languages: tuple[str, ...] = ()
    position: Position = None


@dataclass(frozen=True)
class Passed:
    """Something received that is no post to send: counted as skipped for ``reason`` when it has one (a
    reply filtered out), not at all when it has none (a like, a deletion); the position moves on."""

    reason: str | None = None
    position: Position = None


@dataclass(frozen=True)
class BadFrame:
    """A message from the network that cannot be read: counted and logged, then the session goes on."""

    reason: str
    frame: str | bytes = ""


Event: TypeAlias = Connected | Draft | Passed | BadFrame | None


def network_post_id(network: str, local_id: str) -> str:
    """``network:local_id``, the id a post keeps across replays; hashed when too long for ``Post.id``."""
    post_id = f"{network}:{local_id}"
    if len(post_id) <= MAX_ID_CHARS:
        return post_id
    return f"{network}:sha256:{hashlib.sha256(local_id.encode()).hexdigest()}"


def parse_timestamp(value: object) -> float | None:
    """An ISO 8601 time (``2024-09-09T19:46:02.102Z``; no zone = UTC) as UNIX seconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class RetryAfter(Exception):
    """The network asked to wait (an HTTP 429, a rate-limit header): the next attempt waits at least ``seconds``."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class LiveConfig:
    """What every live source is configured with, whatever its network."""

    status_topic: str
    status_interval: float = 5.0
    languages: LanguageFilter = field(default_factory=LanguageFilter)
    keywords: KeywordFilter = field(default_factory=KeywordFilter)
    remembered_ids: int = 2000  # de-duplication memory; saved with the position, so bounded (about 100 KB)
    checkpoint_interval: float = 1.0
    flush_timeout: float = 30.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # The Kafka connection to read back, after a crash, what was sent since the last checkpoint (None: not done).
    kafka: Settings | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, keywords: str | None = None, languages: str | None = None, **overrides: object
    ) -> LiveConfig:
        """From the settings; ``keywords`` and ``languages`` comma-separated (``languages`` default: the
        ``SENTISTREAM_LIVE_LANGUAGES`` setting, else the model's languages)."""
        return cls(
            status_topic=settings.topic_source_status,
            status_interval=settings.status_interval_seconds,
            languages=LanguageFilter.parse(
                comma_list(languages if languages is not None else settings.live_languages or settings.model_languages)
            ),
            keywords=KeywordFilter(comma_list(keywords)),
            checkpoint_interval=settings.live_checkpoint_seconds,
            kafka=settings,
            **overrides,  # type: ignore[arg-type]
        )


class LiveSource(StatefulSource):
    """A network's live posts, sent to the raw topic exactly once; see the module's documentation."""

    network: ClassVar[str]  # Post.source of its posts, and the default name of the source
    # Failures that are the network's (logged in one line); anything else is logged with its traceback.
    network_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError, RetryAfter)

    def __init__(self, config: LiveConfig, name: str | None = None, shutdown_timeout: float = 15.0):
        # Quix pickles the source into its process: only plain data here; the rest is made in run().
        super().__init__(name or self.network, shutdown_timeout=shutdown_timeout)
        self.config = config

    @abstractmethod
    def session(self, position: Position) -> Iterator[Event]:
        """Connect, resuming after ``position`` (None: from now), and yield what arrives (see the module)."""

    def describe(self) -> str:
        """What the source follows, for the status before it first connects (no secrets)."""
        return self.network

    # --- what a session may use ----------------------------------------------------------------

    def idle(self, seconds: float) -> Iterator[None]:
        """Wait ``seconds`` (a polling interval, a rate limit), yielding ``None`` every second; ends early on stop.

        ``yield from self.idle(...)`` in a session keeps the status and checkpoints going while it waits. It
        yields at least once, so that a session looping over it always gives the base class the hand back.
        """
        deadline = time.monotonic() + seconds
        while self.running and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, IDLE_TICK))  # a stop is seen within a tick
            yield None
        yield None

    # --- the source process ----------------------------------------------------------------------

    def run(self) -> None:
        configure_logging()  # Quix starts the source in a new process, where only its own logger is set up
        self._backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)
        self._meter = RateMeter()
        self._warnings = _QuietWarnings()
        self._posts = self._duplicates = self._bad_frames = 0
        self._skipped: Counter[str] = Counter()
        self._last_post_at: float | None = None
        self._started_at = time.time()
        self._state = SourceState.STARTING
        self._detail = self.describe()
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._retry_at: float | None = None
        self._next_status = self._next_checkpoint = time.monotonic()
        saved = self.state.get(STATE_KEY) or {}
        self._position: Position = saved.get("position")
        self._recent = RecentIds(self.config.remembered_ids, saved.get("recent", ()))
        if saved and not saved.get("stopped_cleanly"):
            self._recall(saved.get("saved_at"))
        self._dirty = True
        self._save()  # at once: from now on the state says this run has not stopped cleanly
        logger.info("%s starting at %s (%d post ids remembered)", self.name, self._position, len(self._recent))
        self._publish_status()
        try:
            while self.running:
                self._run_session()
        finally:
            self._save(stopping=True)
            self._state, self._retry_at = SourceState.STOPPED, None
            self._publish_status()
            logger.info("%s stopped", self.name)
        # Source.cleanup() then flushes: the saved state and the last posts and status reach Kafka.

    def _run_session(self) -> None:
        """One connection, from connecting to its end; a failure is then followed by its back-off."""
        events = self.session(self._position)
        try:
            for event in events:
                self._handle(event)
                self._tick()
                if not self.running:
                    return
            if self.running:
                raise ConnectionError("the network ended the connection")
            return
        except Exception as exc:
            if not self.running:
                return
            delay = self._failed(exc)
        finally:
            events.close()  # the session's own `with` blocks close its connection, before the back-off
        self._wait_ticking(delay)

    def _failed(self, exc: Exception) -> float:
        """Log and publish a failure; returns how long to wait before connecting again."""
        delay = self._backoff.next_delay()
        if isinstance(exc, RetryAfter):
            delay = max(delay, exc.seconds)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if isinstance(exc, self.network_errors):
            logger.warning("%s: %s; connecting again in %.1f s", self.name, error, delay)
        else:
            logger.exception("%s failed unexpectedly; connecting again in %.1f s", self.name, delay)
        now = time.time()  # one reading: the status's retry_at - last_error_at is the back-off itself
        self._last_error, self._last_error_at, self._retry_at = error, now, now + delay
        self._change_state(SourceState.RETRYING)
        return delay

    def _handle(self, event: Event) -> None:
        if isinstance(event, Connected):
            self._detail, self._retry_at = event.detail, None
            self._change_state(SourceState.CONNECTED)
        elif isinstance(event, Draft):
            self._consider(event)
            self._moved(event.position)
        elif isinstance(event, Passed):
            if event.reason:
                self._skipped[event.reason] += 1
            self._moved(event.position)
        elif isinstance(event, BadFrame):
            self._bad_frames += 1
            frame = event.frame.decode("utf-8", "replace") if isinstance(event.frame, bytes) else event.frame
            self._warnings.warn(f"{self.name}: skipped a frame that cannot be read ({event.reason})")
            logger.debug("%s: bad frame (%s): %r", self.name, event.reason, frame[:PREVIEW_CHARS])

    def _consider(self, draft: Draft) -> None:
        if not self._recent.add(draft.id):
            self._duplicates += 1
            return
        self._dirty = True
        send, lang = self.config.languages.choose(draft.languages)
        try:
            post = Post(
                id=draft.id,
                author=draft.author,
                source=self.network,
                text=draft.text,
                created_at=draft.created_at,
                lang=lang,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            if error["loc"] == ("text",):  # an image or a link alone
                self._skipped["no_text"] += 1
            else:
                self._handle(BadFrame(f"not a valid post: {error['loc']}: {error['msg']}", repr(draft)))
            return
        if not send:
            self._skipped["language"] += 1
            return
        if not self.config.keywords.matches(post.text):
            self._skipped["keywords"] += 1
            return
        self.produce(value=post.to_bytes(), key=post.author.encode())
        self._posts += 1
        self._last_post_at = time.time()

    def _moved(self, position: Position) -> None:
        """Valid input arrived: the connection makes progress."""
        self._backoff.reset()
        if position is not None and position != self._position:
            self._position, self._dirty = position, True

    def _tick(self) -> None:
        now = time.monotonic()
        self._meter.record(self._posts)
        if now >= self._next_checkpoint:
            self._save()
            self._next_checkpoint = now + self.config.checkpoint_interval
        if now >= self._next_status:
            self._publish_status()

    def _save(self, stopping: bool = False) -> None:
        """Checkpoint: the posts sent delivered, then the position and remembered ids into state, flushed."""
        if not self._dirty and not stopping:
            return
        # The posts first: a checkpoint that named posts Kafka never got would make them lost for good.
        if self.producer.flush(self.config.flush_timeout):
            raise TimeoutError(f"Kafka did not confirm the posts sent within {self.config.flush_timeout:g} s")
        checkpoint = {"position": self._position, "recent": list(self._recent), "saved_at": time.time()}
        self.state.set(STATE_KEY, {**checkpoint, "stopped_cleanly": stopping})
        self.flush(self.config.flush_timeout)
        self._dirty = False

    def _recall(self, saved_at: float | None) -> None:
        """The last run did not stop cleanly: remember the posts it sent after its last checkpoint (``recall``)."""
        if saved_at is None or self.config.kafka is None:
            return
        # Posts not in the checkpoint went out within a checkpoint interval (and a flush) after it.
        until = saved_at + self.config.checkpoint_interval + self.config.flush_timeout + RECALL_MARGIN
        try:
            ids = sent_post_ids(
                self.config.kafka, self.producer_topic.name, self.network, saved_at - RECALL_MARGIN, until
            )
        except (KafkaException, TimeoutError) as exc:
            logger.warning(
                "%s: could not read back what it sent before it stopped, some may be sent again: %s", self.name, exc
            )
            return
        recalled = sum(self._recent.add(post_id) for post_id in ids)
        logger.info("%s did not stop cleanly: %d posts sent after its last checkpoint recognised", self.name, recalled)

    def _change_state(self, state: SourceState) -> None:
        if state != self._state:
            logger.info("%s: %s -> %s (%s)", self.name, self._state.value, state.value, self._detail)
        self._state = state
        self._publish_status()  # every failure too, with its error, even when already retrying

    def status(self) -> SourceStatus:
        return SourceStatus(
            name=self.name,
            network=self.network,
            state=self._state,
            detail=self._detail,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            retry_at=self._retry_at,
            failures=self._backoff.failures,
            posts=self._posts,
            posts_per_second=round(self._meter.rate(self._posts), 3),
            duplicates=self._duplicates,
            skipped=dict(self._skipped),
            bad_frames=self._bad_frames,
            position=None if self._position is None else str(self._position)[:PREVIEW_CHARS],
            last_post_at=self._last_post_at,
            started_at=self._started_at,
            sent_at=time.time(),
            interval_seconds=self.config.status_interval,
        )

    def _publish_status(self) -> None:
        self.producer.produce(topic=self.config.status_topic, key=self.name.encode(), value=self.status().to_bytes())
        self.producer.poll(0)
        self._next_status = time.monotonic() + self.config.status_interval

    def _wait_ticking(self, seconds: float) -> None:
        """A back-off: wait, publishing the status meanwhile; ends early on stop."""
        for _ in self.idle(seconds):
            self._tick()
