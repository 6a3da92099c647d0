"""The live sources the app runs: ``python -m producer --source <network>`` as child processes of the server.

One child per network at most, started and stopped from any tab, stopped with the server. A token typed on the
Producer page travels in the child's environment only (the variable the source reads), never in its command line;
the server keeps it in memory while the child runs, to blank it out of the child's output. What the child writes
(its log) goes to the server's stderr and is kept as a bounded tail, so that the page can say why a child died.
"""

from __future__ import annotations

import collections
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Literal

from pydantic import SecretStr

from common.settings import PROJECT_ROOT, Settings

logger = logging.getLogger(__name__)

Network = Literal["bluesky", "mastodon", "facebook"]
NETWORK_LABELS: dict[Network, str] = {"bluesky": "Bluesky", "mastodon": "Mastodon", "facebook": "Facebook page"}
TAIL_LINES = 40
STOP_TIMEOUT_SECONDS = 20.0  # a source saves its position and flushes on SIGTERM: seconds, unless Kafka is away
REDACTED = "[token hidden]"


@dataclass(frozen=True)
class LiveOptions:
    """What the Producer page asks for one network (empty = the server's setting). Secrets are not here."""

    network: Network
    keywords: str = ""
    languages: str = ""
    accounts: str = ""  # bluesky: DIDs
    instance_url: str = ""  # mastodon
    timeline: str = ""  # mastodon: public, local, hashtag, list
    hashtag: str = ""
    list_id: str = ""
    page_id: str = ""  # facebook


def command(options: LiveOptions) -> list[str]:
    """The child's command line: the options, never a token."""
    args = [sys.executable, "-m", "producer", "--source", options.network]
    flags = {
        "--keywords": options.keywords,
        "--languages": options.languages,
        "--accounts": options.accounts if options.network == "bluesky" else "",
        "--timeline": options.timeline if options.network == "mastodon" else "",
        "--hashtag": options.hashtag if options.network == "mastodon" else "",
        "--list-id": options.list_id if options.network == "mastodon" else "",
        "--page-id": options.page_id if options.network == "facebook" else "",
    }
    for flag, value in flags.items():
        if value.strip():
            args += [flag, value.strip()]
    return args


TOKEN_VARIABLES: dict[Network, str] = {
    "mastodon": "SENTISTREAM_MASTODON_ACCESS_TOKEN",
    "facebook": "SENTISTREAM_FACEBOOK_PAGE_TOKEN",
}


def environment(settings: Settings, options: LiveOptions, token: str) -> dict[str, str]:
    """The child's environment: the server's settings, the instance URL, and the token (if given) where the
    source reads it."""
    env = settings.child_environment()
    if options.network == "mastodon" and options.instance_url.strip():
        env["SENTISTREAM_MASTODON_INSTANCE_URL"] = options.instance_url.strip()
    variable = TOKEN_VARIABLES.get(options.network)
    if variable is not None and token:
        env[variable] = token
    return env


def secrets_of(settings: Settings, token: str) -> list[str]:
    """Every secret the child may know: the token given and the settings' own (SASL password, tokens)."""
    found = [token] + [value.get_secret_value() for value in dict(settings).values() if isinstance(value, SecretStr)]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class ChildState:
    """One child's state, for a page: no secret in it."""

    network: Network
    pid: int
    started_at: float
    running: bool
    stop_requested: bool  # someone pressed stop (or the server stops): its end is no failure
    returncode: int | None  # None while it runs
    ended_at: float | None
    tail: str  # the last lines it wrote (its log), secrets blanked out

    @property
    def failed(self) -> bool:
        return not self.running and not (self.stop_requested and self.returncode in (0, -signal.SIGTERM))


@dataclass
class _Child:
    options: LiveOptions
    process: subprocess.Popen[bytes]
    started_at: float
    secrets: list[str] = field(repr=False)
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    stop_requested: bool = False
    ended_at: float | None = None


class LiveSourceHolder:
    """Thread-safe; one per server. Runs at most one child per network; each outlives the tab that started it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._children: dict[Network, _Child] = {}

    def start(self, options: LiveOptions, token: str = "") -> int:
        """Start the source; its pid. Raises RuntimeError when that network's source already runs."""
        with self._lock:
            known = self._children.get(options.network)
            if known is not None and known.process.poll() is None:
                raise RuntimeError(f"the {NETWORK_LABELS[options.network]} source is already running")
            process = subprocess.Popen(
                command(options),
                cwd=PROJECT_ROOT,
                env=environment(self.settings, options, token),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            child = _Child(options, process, time.time(), secrets_of(self.settings, token))
            self._children[options.network] = child
        threading.Thread(target=self._follow, args=(child,), name=f"live-source-{options.network}", daemon=True).start()
        logger.info("Live source %s started (pid %d): %s", options.network, process.pid, " ".join(command(options)))
        return process.pid

    def stop(self, network: Network) -> None:
        """Ask the source to stop (SIGTERM: it saves its position and flushes); returns at once."""
        with self._lock:
            child = self._children.get(network)
            if child is None or child.process.poll() is not None:
                return
            child.stop_requested = True
        child.process.send_signal(signal.SIGTERM)
        logger.info("Live source %s (pid %d) asked to stop", network, child.process.pid)

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every child and wait for them (killed after ``timeout``): the server is going."""
        with self._lock:
            children = list(self._children.values())
        for child in children:
            self.stop(child.options.network)
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                logger.warning("Live source %s did not stop within %g s: killed", child.options.network, timeout)
                child.process.kill()
                child.process.wait()

    def states(self) -> list[ChildState]:
        with self._lock:
            children = list(self._children.values())
            return [
                ChildState(
                    child.options.network,
                    child.process.pid,
                    child.started_at,
                    child.ended_at is None,
                    child.stop_requested,
                    child.process.returncode if child.ended_at is not None else None,
                    child.ended_at,
                    "\n".join(child.tail),
                )
                for child in children
            ]

    def _follow(self, child: _Child) -> None:
        """Keep the tail of what the child writes until it ends, then note its end."""
        output: IO[bytes] = child.process.stdout  # type: ignore[assignment]
        for raw in output:
            line = redact(raw.decode("utf-8", "replace").rstrip(), child.secrets)
            print(line, file=sys.stderr, flush=True)  # its log, in the server's terminal as if it were its own
            with self._lock:
                child.tail.append(line)
        code = child.process.wait()
        with self._lock:
            child.ended_at = time.time()
            expected = child.stop_requested
        if expected:
            logger.info("Live source %s stopped (exit code %d)", child.options.network, code)
        else:
            logger.warning("Live source %s exited with code %d", child.options.network, code)
