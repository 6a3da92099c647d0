"""The build as it runs: its progress (file, bar, log), stop signals, one build per model at a time, the plan."""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.settings import PROJECT_ROOT, get_settings
from sentiment_model import build, datasets, registry
from sentiment_model import progress as progress_module
from sentiment_model.build import (
    EXIT_BUSY,
    EXIT_STOPPED,
    PROFILES,
    ModelBusy,
    build_model,
    card_path,
    default_plan,
    main,
)
from sentiment_model.progress import BuildReporter
from sentiment_model.registry import BuildProgress
from tests.waiting import wait_for

# The tiny profile, smaller still (seconds).
SMALL = {"max_train": 20, "max_dev": 10, "max_test": 40, "epochs": 3}
# tqdm's bar as the build draws it: "<name>:  42%|████▏     | 00:12, training, epoch 2/3, ..."
BAR = re.compile(r"(?P<name>[\w.-]+): +(?P<percent>\d+)%\|[^|\n]*\| \d\d:\d\d, (?P<what>[^\r\n]*)")


def progress_of(models_dir: Path, name: str) -> BuildProgress | None:
    path = registry.progress_path(models_dir, name)
    return BuildProgress.model_validate_json(path.read_bytes()) if path.exists() else None


def leftovers(models_dir: Path) -> list[str]:
    return sorted(path.name for path in models_dir.iterdir() if "partial" in path.name)


@pytest.fixture
def progress_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[BuildProgress, bool, bool]]:
    """Every progress the build writes, with whether its model file and its card existed at that moment."""
    writes: list[tuple[BuildProgress, bool, bool]] = []
    write = registry.write_progress

    def record(models_dir: Path, progress: BuildProgress) -> None:
        model = registry.model_path(models_dir, progress.name)
        writes.append((progress, model.exists(), card_path(model).exists()))
        write(models_dir, progress)

    monkeypatch.setattr(registry, "write_progress", record)
    return writes


def test_progress_goes_from_running_to_done(
    tmp_path: Path,
    progress_writes: list[tuple[BuildProgress, bool, bool]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress_module, "WRITE_INTERVAL_S", 0.0)  # every update written, to see them all
    out = tmp_path / "m.pt"
    card = build_model(out, profile="tiny", pre_embed=True, **SMALL)

    progresses = [progress for progress, _, _ in progress_writes]
    assert [p.state for p in progresses] == ["running"] * (len(progresses) - 1) + ["done"]
    percents = [p.percent for p in progresses]
    assert percents == sorted(percents) and percents[0] < 10 and percents[-1] == 100
    phases = list(dict.fromkeys(p.phase for p in progresses))
    assert phases == ["loading data", "embedding texts", "training", "evaluating", "writing card"]
    training = [p for p in progresses if p.phase == "training"]
    assert {p.epochs for p in training} == {SMALL["epochs"]}
    assert max(p.epoch or 0 for p in training) == SMALL["epochs"]
    assert any(p.loss is not None and p.loss > 0 for p in training)
    assert all(p.eta_seconds is not None for p in progresses[:-1])
    # Flair's dev macro-F1 after each epoch, then the held-out figure the card publishes.
    assert [p.dev_macro_f1 is not None for p in training] == sorted(p.dev_macro_f1 is not None for p in training)
    assert any(p.dev_macro_f1 is not None for p in training)
    final = progresses[-1]
    assert (final.epoch, final.epochs) == (SMALL["epochs"], SMALL["epochs"])
    assert final.dev_macro_f1 == card["training"]["dev_macro_f1"] is not None
    assert final.test_macro_f1 == card["test"]["macro_f1"]
    assert final.pid == os.getpid() and not final.is_live()
    assert progress_of(tmp_path, "m") == final
    # The model and its card appear together, at the end: while running, a reader finds neither.
    assert all(not model and not card_file for p, model, card_file in progress_writes if p.state == "running")
    assert progress_writes[-1][1:] == (True, True)
    assert leftovers(tmp_path) == []

    # The terminal shows the same progress as a tqdm bar.
    bars = [match.groupdict() for match in BAR.finditer(capsys.readouterr().err)]
    assert {bar["name"] for bar in bars} == {"m"}
    assert any(bar["what"].startswith(f"training, epoch {SMALL['epochs']}/{SMALL['epochs']}") for bar in bars)
    assert bars[-1]["percent"] == "100" and bars[-1]["what"].startswith("done")
    assert f"test macro-F1 {card['test']['macro_f1']:.3f}" in bars[-1]["what"]

    # The build's log, Flair's training lines included, is in the models folder for the app.
    log = registry.log_path(tmp_path, "m").read_text()
    assert "m, profile tiny: 60 train, 10 dev, 40 test examples" in log
    assert f"EPOCH {SMALL['epochs']} done" in log and "DEV : loss" in log
    assert "wrote" in log.splitlines()[-1]


def test_a_failed_build_says_why_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("the data set is unreadable")

    monkeypatch.setattr(datasets, "load_splits", broken)
    with pytest.raises(RuntimeError, match="unreadable"):
        build_model(tmp_path / "m.pt", profile="tiny", **SMALL)
    progress = progress_of(tmp_path, "m")
    assert progress is not None and progress.state == "failed" and progress.phase == "loading data"
    assert progress.error == "RuntimeError: the data set is unreadable"
    assert not (tmp_path / "m.pt").exists() and leftovers(tmp_path) == []
    assert "Traceback" in registry.log_path(tmp_path, "m").read_text()


def test_a_build_failing_after_training_keeps_the_previous_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m.pt"
    card = build_model(out, profile="tiny", **SMALL)
    model_bytes = out.read_bytes()

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("evaluation broke")

    # The new model is trained and saved aside when its evaluation fails.
    monkeypatch.setattr(build, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        build_model(out, profile="tiny", force=True, **SMALL)
    progress = progress_of(tmp_path, "m")
    assert progress is not None and progress.state == "failed" and progress.phase == "evaluating"
    assert out.read_bytes() == model_bytes and registry.read_card(out) == card
    assert leftovers(tmp_path) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_progress_file_is_written_at_most_once_a_second_and_at_each_phase(
    tmp_path: Path, progress_writes: list[tuple[BuildProgress, bool, bool]]
) -> None:
    clock = FakeClock()
    phases = [("loading data", 10.0), ("training", 30.0)]
    reporter = BuildReporter(tmp_path, "m", "tiny", phases, clock=clock, bar_file=io.StringIO())
    for step in range(1, 101):  # 100 updates over 5 seconds
        clock.now += 0.05
        reporter.advance(step / 100)
    assert 5 <= len(progress_writes) <= 7
    assert reporter.progress.percent == 25.0
    # Running twice as long as estimated: the ETA doubles the estimate of what is left.
    assert reporter.eta_seconds(clock.now + 15) == pytest.approx(2 * 30.0)
    written = len(progress_writes)
    reporter.phase("training")  # a phase change is written at once
    assert len(progress_writes) == written + 1 and progress_writes[-1][0].phase == "training"
    reporter.advance(0.5, epoch=1, epochs=2, loss=0.9)
    assert reporter.progress.percent == 62.5 and len(progress_writes) == written + 1
    reporter.note(dev_macro_f1=0.6)  # news from an epoch: with the next write
    assert len(progress_writes) == written + 1
    clock.now += 1.0
    reporter.advance(0.6)
    assert progress_writes[-1][0].dev_macro_f1 == 0.6 and progress_writes[-1][0].epoch == 1
    assert len(progress_writes) == written + 2
    reporter.done(0.61)
    assert progress_writes[-1][0].state == "done" and progress_writes[-1][0].percent == 100


# SIGINT too: Flair's trainer catches KeyboardInterrupt, ends training early and carries on, so Ctrl-C must not
# reach it as one.
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_training_stops_the_build_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    out = tmp_path / "m.pt"
    with open(tmp_path / "stderr.txt", "w") as stderr:
        build_process = subprocess.Popen(
            [sys.executable, "-m", "sentiment_model.build", "--profile", "tiny", "--out", str(out)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # Inside Flair's training loop: the first epoch has begun (it embeds the texts, so it lasts seconds).
        running = wait_for(
            lambda: (p := progress_of(tmp_path, "m")) is not None and p.phase == "training" and p.epoch and p,
            timeout=300,
            what="the build to be training its first epoch",
            interval=0.05,
        )
        assert running.state == "running" and running.pid == build_process.pid and running.is_live()
        build_process.send_signal(stop_signal)
        assert (
            build_process.wait(timeout=60)
            == EXIT_STOPPED + stop_signal
            == {"SIGTERM": 143, "SIGINT": 130}[stop_signal.name]
        )
    finally:
        build_process.kill()
        build_process.wait()

    stopped = progress_of(tmp_path, "m")
    assert stopped is not None and stopped.state == "stopped" and stopped.phase == "training"
    assert not stopped.is_live()
    assert not out.exists() and not card_path(out).exists() and leftovers(tmp_path) == []
    terminal = (tmp_path / "stderr.txt").read_text()
    assert BAR.search(terminal) and "stopped while training" in terminal
    assert f"building m stopped ({stop_signal.name})" in registry.log_path(tmp_path, "m").read_text()

    # The next build starts over and succeeds, even past what a build killed outright would leave.
    (tmp_path / "m.pt.partial").write_bytes(b"half a model")
    card = build_model(out, profile="tiny", **SMALL)
    done = progress_of(tmp_path, "m")
    assert done is not None and done.state == "done" and done.test_macro_f1 == card["test"]["macro_f1"]
    assert out.exists() and card_path(out).exists() and leftovers(tmp_path) == []


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """Another build of model "m" under way: its lock held through a descriptor of its own."""
    with open(tmp_path / "m.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242\n")
        lock.flush()
        yield tmp_path
        fcntl.flock(lock, fcntl.LOCK_UN)


def test_a_stop_swallowed_by_a_finalizer_stops_the_build_at_its_next_step(tmp_path: Path) -> None:
    class SignalledDuringFinalization:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # its BuildStopped is raised here, where Python ignores it

    reporter = BuildReporter(tmp_path, "m", "tiny", [("training", 10.0)], bar_file=io.StringIO())
    progress_module.STOP.install()
    try:
        SignalledDuringFinalization()  # dropped at once: __del__ runs
        assert progress_module.STOP.signum == signal.SIGTERM, "the stop arrived"
        with pytest.raises(progress_module.BuildStopped):
            reporter.advance(0.5)
    finally:
        progress_module.STOP.restore()
        progress_module.STOP.signum = None


def test_a_second_build_of_the_same_model_is_refused(held_lock: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = held_lock / "m.pt"
    with pytest.raises(ModelBusy, match="m is already being built"):
        build_model(out, profile="tiny", **SMALL)
    assert main(["--profile", "tiny", "--out", str(out)]) == EXIT_BUSY == 75
    assert "m is already being built (by process 4242" in caplog.text
    # It touched nothing: no progress of its own over the other build's, no model.
    assert sorted(path.name for path in held_lock.iterdir()) == ["m.lock"]


def test_the_plan_builds_quick_then_full() -> None:
    assert default_plan() == [(registry.QUICK_MODEL, "quick"), (registry.FULL_MODEL, "full")]
    assert PROFILES["quick"]["fine_tune"] is False and PROFILES["full"]["fine_tune"] is True


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """SENTISTREAM_MODELS_DIR for this test (settings are read once per process, so read afresh)."""
    monkeypatch.setenv("SENTISTREAM_MODELS_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_the_plan_skips_models_already_built(
    models_dir: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plan of two: "first" is already built (the session's tiny model), "second" is not.
    monkeypatch.setitem(PROFILES, "small", {**PROFILES["tiny"], **SMALL})
    monkeypatch.setattr(build, "default_plan", lambda: [("first", "tiny"), ("second", "small")])
    first, second = registry.model_path(models_dir, "first"), registry.model_path(models_dir, "second")
    shutil.copy(tiny_model_path, first)
    shutil.copy(card_path(tiny_model_path), card_path(first))
    first_built = first.stat().st_mtime_ns

    assert main([]) == 0
    assert first.stat().st_mtime_ns == first_built and progress_of(models_dir, "first") is None
    card: dict[str, Any] | None = registry.read_card(second)
    assert card is not None and card["profile"] == "small" and card["name"] == "second"
    second_built = second.stat().st_mtime_ns

    assert main([]) == 0  # everything built: nothing to do
    assert first.stat().st_mtime_ns == first_built and second.stat().st_mtime_ns == second_built
    assert [model.name for model in registry.built_models(models_dir)] == ["first", "second"]


def test_the_plan_takes_no_per_profile_settings() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--epochs", "3"])
    assert exit_.value.code == 2
