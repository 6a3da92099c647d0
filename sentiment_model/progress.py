"""How far a model build is, for people: a progress file for the app, a tqdm bar for the terminal.

A :class:`BuildReporter` follows one model's build through its phases (``loading data``, ``embedding texts``,
``training``, ``evaluating``, ``evaluating int8``, ``writing card``). Each phase has an estimated duration
(the build's own estimate from its settings), so the percent is of the whole build and the ETA is that
estimate of what is left, scaled by how fast the build has gone so far. Every change goes to the tqdm bar;
the progress file (``registry.write_progress``) is replaced at every phase change and end, and otherwise
at most once per ``interval`` seconds.

Training progress comes from Flair itself: :func:`flair_plugin` is a ``TrainerPlugin`` listening to the
trainer's ``after_setup`` (epochs), ``before_training_epoch``, ``after_training_batch`` (position in the epoch)
and ``metric_recorded`` (the training loss of each batch, and the dev split's macro-F1 that Flair evaluates after
each epoch when it has a dev split).

:data:`STOP` turns SIGTERM and SIGINT into :class:`BuildStopped` once the command line installs it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from tqdm import tqdm

from sentiment_model import registry
from sentiment_model.registry import BuildProgress

WRITE_INTERVAL_S = 1.0


class BuildStopped(BaseException):
    """A stop signal (SIGTERM, SIGINT) arrived during a build.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it;
    not a ``KeyboardInterrupt``, which Flair's trainer catches to end training early and carry on.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Turns SIGTERM and SIGINT into :class:`BuildStopped` in the main thread, at once, except inside
    :meth:`shielded` sections (finishing a model), after which it is raised. Later signals are ignored:
    the first one is being acted on."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._shielded = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        if not self._shielded:
            raise BuildStopped(signum)

    def install(self) -> None:
        for stop_signal in self.SIGNALS:
            self._previous[stop_signal] = signal.signal(stop_signal, self._handle)

    def restore(self) -> None:
        for stop_signal, handler in self._previous.items():
            signal.signal(stop_signal, handler)
        self._previous.clear()

    def check(self) -> None:
        """Raise :class:`BuildStopped` if a stop arrived while shielded."""
        if self.signum is not None and not self._shielded:
            raise BuildStopped(self.signum)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1


# The one stop handler of the process (installed by the command line; a library caller installs nothing).
STOP = StopSignals()


class BuildReporter:
    """Progress of one model's build: phases with estimated durations, the bar and the progress file."""

    def __init__(
        self,
        models_dir: Path,
        name: str,
        profile: str,
        phases: Sequence[tuple[str, float]],
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.time,
        bar_file: Any = None,
    ):
        if not phases:
            raise ValueError("a build has at least one phase")
        self.models_dir = models_dir
        self._clock = clock
        self._interval = WRITE_INTERVAL_S if interval is None else interval
        self._estimates = dict(phases)
        self._order = [phase for phase, _ in phases]
        self._total = sum(max(seconds, 0.0) for seconds in self._estimates.values()) or 1.0
        self._phase_index = 0
        self._fraction = 0.0
        self._written_at: float | None = None
        now = clock()
        self.progress = BuildProgress(
            name=name,
            profile=profile,
            state="running",
            phase=self._order[0],
            started_at=now,
            updated_at=now,
            pid=os.getpid(),
        )
        self._bar = tqdm(
            total=100,
            desc=name,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
            file=bar_file if bar_file is not None else sys.stderr,
            mininterval=0.5,
            dynamic_ncols=True,
            leave=True,
        )
        self._update(force=True)

    # --- what the build says ------------------------------------------------------------------------

    def phase(self, phase: str, **fields: Any) -> None:
        """The build enters ``phase`` (one of those given, in order), with any other fields of the progress."""
        STOP.check()
        self._phase_index = self._order.index(phase)
        self._fraction = 0.0
        self._update(force=True, phase=phase, **fields)

    def advance(self, fraction: float, **fields: Any) -> None:
        """How far the current phase is (0..1), with any other fields of the progress (epoch, loss, ...)."""
        # A stop whose BuildStopped Python swallowed (raised while a finalizer ran: "Exception ignored in
        # __del__") is raised at the build's next step instead of never.
        STOP.check()
        self._fraction = min(max(fraction, self._fraction), 1.0)
        self._update(**fields)

    def note(self, **fields: Any) -> None:
        """Fields that changed without the phase moving (e.g. the dev macro-F1 after an epoch): on the bar at once,
        in the file with the next write."""
        self._update(redraw=True, **fields)

    def done(self, test_macro_f1: float) -> None:
        self._phase_index, self._fraction = len(self._order) - 1, 1.0
        self._update(force=True, state="done", test_macro_f1=test_macro_f1, eta_seconds=0.0)
        self.close()

    def failed(self, error: str) -> None:
        self._update(force=True, state="failed", error=error, eta_seconds=None)
        self.close()

    def stopped(self) -> None:
        self._update(force=True, state="stopped", eta_seconds=None)
        self.close()

    def close(self) -> None:
        self._bar.close()

    # --- figures --------------------------------------------------------------------------------------

    def percent(self) -> float:
        done = sum(self._estimates[phase] for phase in self._order[: self._phase_index])
        done += self._estimates[self._order[self._phase_index]] * self._fraction
        return round(min(100.0 * done / self._total, 100.0), 1)

    def eta_seconds(self, now: float) -> float | None:
        """The estimate of what is left, scaled by how the build has kept to its estimate so far."""
        percent = self.percent()
        remaining = self._total * (100.0 - percent) / 100.0
        elapsed = now - self.progress.started_at
        estimated_so_far = self._total * percent / 100.0
        if estimated_so_far >= 1.0 and elapsed > 0:
            remaining *= elapsed / estimated_so_far
        return round(remaining, 1)

    def _update(self, force: bool = False, redraw: bool = False, **fields: Any) -> None:
        """Apply ``fields``; redraw the bar (at once if ``force`` or ``redraw``); write the file if ``force`` or
        ``interval`` has passed since the last write."""
        now = self._clock()
        values: dict[str, Any] = {"percent": self.percent(), "updated_at": now}
        if self.progress.state == "running" and fields.get("state", "running") == "running":
            values["eta_seconds"] = self.eta_seconds(now)
        values.update(fields)
        self.progress = self.progress.model_copy(update=values)
        self._bar.n = self.progress.percent
        self._bar.set_postfix_str(self.describe(), refresh=False)
        if force or redraw:
            self._bar.refresh()
        else:
            self._bar.update(0)  # redraws when tqdm's own interval has passed
        if force or self._written_at is None or now - self._written_at >= self._interval:
            registry.write_progress(self.models_dir, self.progress)
            self._written_at = now

    def describe(self) -> str:
        """The progress in words, as the bar shows it."""
        progress = self.progress
        if progress.state == "running":
            parts = [progress.phase]
        else:
            parts = [progress.state if progress.state == "done" else f"{progress.state} while {progress.phase}"]
        if progress.epoch is not None and progress.epochs is not None and progress.phase == "training":
            parts.append(f"epoch {progress.epoch}/{progress.epochs}")
        if progress.loss is not None and progress.phase == "training":
            parts.append(f"loss {progress.loss:.3f}")
        if progress.dev_macro_f1 is not None:
            parts.append(f"dev macro-F1 {progress.dev_macro_f1:.3f}")
        if progress.test_macro_f1 is not None:
            parts.append(f"test macro-F1 {progress.test_macro_f1:.3f}")
        if progress.state == "running" and progress.eta_seconds is not None:
            minutes, seconds = divmod(round(progress.eta_seconds), 60)
            parts.append(f"ETA {minutes}:{seconds:02d}")
        if progress.error:
            parts.append(progress.error)
        return ", ".join(parts)


def flair_plugin(reporter: BuildReporter) -> Any:
    """A Flair ``TrainerPlugin`` that reports training to ``reporter`` (its phase must be "training")."""
    from flair.trainers.plugins import TrainerPlugin

    class ProgressPlugin(TrainerPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.epochs = 1
            self.loss_sum = 0.0  # of this epoch's batch losses so far
            self.batches = 0

        @TrainerPlugin.hook
        def after_setup(self, max_epochs: int, **_: Any) -> None:
            self.epochs = max_epochs
            reporter.advance(0.0, epoch=0, epochs=max_epochs)

        @TrainerPlugin.hook
        def before_training_epoch(self, epoch: int, **_: Any) -> None:
            self.loss_sum, self.batches = 0.0, 0

        @TrainerPlugin.hook
        def after_training_batch(self, batch_no: int, total_number_of_batches: int, epoch: int, **_: Any) -> None:
            done = (epoch - 1 + (batch_no + 1) / total_number_of_batches) / self.epochs
            loss = round(self.loss_sum / self.batches, 4) if self.batches else None
            reporter.advance(done, epoch=epoch, epochs=self.epochs, loss=loss)

        @TrainerPlugin.hook
        def metric_recorded(self, record: Any) -> None:
            if record.name == ("train", "batch_loss"):  # the mean loss of one batch's examples
                self.loss_sum += float(record.value)
                self.batches += 1
            elif record.name == ("train", "loss"):  # the epoch's mean, as Flair logs it
                reporter.note(loss=round(float(record.value), 4))
            elif record.name == ("dev", "macro avg", "f1-score"):
                reporter.note(dev_macro_f1=round(float(record.value), 4))

        @property
        def attach_to_all_processes(self) -> bool:
            return False

    return ProgressPlugin()
