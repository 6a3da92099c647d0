"""The Models page, the model banners of every page and the Live page's models, with AppTest against the session's
real Kafka: cards of a real tiny model, build progress files written here, heartbeats and results produced here.

Flair's pretrained models are never fetched: their URLs point at a local port that refuses, and Flair's cache is a
folder of the test's own (``offline_flair`` in tests/dashboard/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from streamlit.testing.v1 import AppTest

from common.contract import MODEL_CHOICE_KEY, ModelChoice, WorkerState
from common.settings import Settings
from dashboard import model_control, resources
from sentiment_model import pretrained, registry
from sentiment_model.registry import BuildProgress
from tests.dashboard.apptest import markdown_shown, metric, open_page, rerun_until, texts
from tests.dashboard.conftest import make_posts, use_settings
from tests.dashboard.heartbeats import heartbeat, publish, worker
from tests.dashboard.samples import result_json
from tests.topic_reader import read_all
from tests.topic_writer import send_posts
from tests.waiting import wait_for

QUICK, FULL = registry.QUICK_MODEL, registry.FULL_MODEL


@pytest.fixture
def models_dir(tmp_path: Path, tiny_model_path: Path) -> Path:
    """A models folder holding the real tiny model twice: as the product's quick model and under its own name."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (QUICK, "tiny"):
        (folder / f"{name}.pt").symlink_to(tiny_model_path)
        shutil.copy(registry.card_path(tiny_model_path), registry.card_path(folder / f"{name}.pt"))
    return folder


@pytest.fixture
def tiny_card(tiny_model_path: Path) -> dict:
    return json.loads(registry.card_path(tiny_model_path).read_text())


@pytest.fixture
def models_settings(app_settings: Settings, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The app's settings with the models folder above; Flair is offline (``offline_flair``, tests/dashboard)."""
    settings = app_settings.model_copy(
        update={"models_dir": models_dir, "model": "auto", "monitor_interval_seconds": 0.5}
    )
    use_settings(settings, monkeypatch)
    return settings


def progress(name: str, **fields: object) -> BuildProgress:
    now = time.time()
    values: dict[str, object] = {
        "profile": registry.PROFILE_OF.get(name, "tiny"),
        "state": "running",
        "phase": "training",
        "percent": 42.0,
        "eta_seconds": 125.0,
        "epoch": 1,
        "epochs": 1,
        "loss": 0.4321,
        "dev_macro_f1": 0.8123,
        "started_at": now - 300,
        "updated_at": now - 2,
        "pid": os.getpid(),  # this process: live
    } | fields
    return BuildProgress(name=name, **values)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def progress_bars(app: AppTest) -> list[tuple[int, str]]:
    return [(bar.proto.value, bar.proto.text) for bar in app.get("progress")]


def figures(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def frame_with(app: AppTest, column: str, index: int = 0):
    found = [frame.value for frame in app.dataframe if column in frame.value.columns]
    return found[index] if index < len(found) else None


def test_the_models_page_renders_the_cards_of_the_built_models(models_settings: Settings, tiny_card: dict) -> None:
    # The speeds a full build measures (fp32, and the int8-quantised model), as build.py writes them in the card.
    speeds = {
        "speed_sentences_per_second": {"batch_1": 86.4, "batch_32": 155.8},
        "test_int8_dynamic_quantization": {
            "accuracy": 0.8486,
            "macro_f1": 0.8424,
            "per_class": {},
            "speed_sentences_per_second": {"batch_1": 150.2, "batch_32": 343.0},
        },
    }
    card_file = registry.card_path(models_settings.models_dir / "tiny.pt")
    card_file.write_text(json.dumps(tiny_card | speeds))
    app = open_page("pages/models.py")
    test = tiny_card["test"]
    # Two cards (the quick model first, the product's own before others), each with its held-out figures.
    assert [m.value for m in app.metric if m.label == "Held-out accuracy"] == [f"{test['accuracy']:.3f}"] * 2
    assert [m.value for m in app.metric if m.label == "Held-out macro-F1"] == [f"{test['macro_f1']:.3f}"] * 2
    assert metric(app, "Test examples") == f"{test['test_size']:,}"
    assert metric(app, "Size") == f"{tiny_card['file_size_bytes'] / 1e6:.1f} MB"
    headings = [m.value for m in app.markdown if m.value.startswith("### ")]
    assert headings == [f"### ` {QUICK} `", "### ` tiny `"]

    classes = frame_with(app, "recall")
    assert list(classes["class"]) == list(test["per_class"])
    assert list(classes["F1"]) == [scores["f1"] for scores in test["per_class"].values()]
    # Per card: the confusion matrix as a heatmap of the card's counts, and the accuracy by source.
    heatmaps = [figure for figure in figures(app) if figure["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 2 and len(app.get("plotly_chart")) == 4
    matrix = test["confusion_matrix"]
    assert heatmaps[0]["data"][0]["x"] == matrix["labels"] and heatmaps[0]["data"][0]["y"] == matrix["labels"]
    heatmap = heatmaps[0]["data"][0]
    cells = [[int(cell.split("<br>")[0].replace(",", "")) for cell in row] for row in heatmap["text"]]
    assert cells == matrix["rows_true_columns_predicted"]
    # Coloured by each cell's share of its true class (its row).
    assert heatmap["z"] == [[n / sum(row) for n in row] for row in matrix["rows_true_columns_predicted"]]
    sources = next(figure for figure in figures(app) if figure["data"][0]["type"] == "bar")["data"][0]
    assert dict(zip(sources["y"], sources["x"], strict=True)) == test["by_source_accuracy"]
    runtimes = frame_with(app, "runtime")  # the quick card has no speeds: only the other card's table
    assert runtimes[["runtime", "batch 1", "batch 32", "accuracy", "macro-F1"]].values.tolist() == [
        ["torch fp32", 86.4, 155.8, test["accuracy"], test["macro_f1"]],
        ["torch int8 (dynamic quantisation)", 150.2, 343.0, 0.8486, 0.8424],
    ]
    assert "Not measured for this model." in [c.value for c in app.caption]
    assert [m.value for m in app.metric if m.label == "Speed, fp32"] == ["not measured", "156/s"]
    data = frame_with(app, "licence")
    assert set(data["licence"]) == {"MIT"} and "vaderSentiment==3.3.2" in set(data["package"])

    # The quick model says what it is, with its measured macro-F1; the other card does not.
    quick = [w.value for w in app.warning if "The quick model" in w.value]
    assert quick == [
        "**The quick model**: built first, in minutes, so that sentiment shows early; it is less accurate than the "
        f"full model. Held-out macro-F1 **{test['macro_f1']:.3f}**"
    ]
    # Flair's pretrained models are listed, with why they cannot be loaded here (its server refuses).
    rerun_until(app, lambda app: "checking…" not in set(frame_with(app, "from")["status"]), timeout=30)
    assert frame_with(app, "from")[["name", "status"]].values.tolist() == [
        ["sentiment", "cannot be loaded here"],
        ["sentiment-fast", "cannot be loaded here"],
    ]
    assert "Flair pretrained model 'sentiment' is not cached at" in texts(app)


def test_a_build_in_progress_shows_its_bar_and_a_killed_one_says_it_stopped(models_settings: Settings) -> None:
    models_dir = models_settings.models_dir
    registry.write_progress(models_dir, progress(FULL))
    registry.write_progress(
        models_dir,
        progress(
            QUICK,
            phase="evaluating",
            percent=90.0,
            pid=dead_pid(),
            started_at=time.time() - 900,
            updated_at=time.time() - 120,
        ),
    )
    registry.log_path(models_dir, FULL).write_text(
        "loading data\n" + "".join(f"\repoch 1: {i}%" for i in range(0, 50, 10)) + "\nlast line of the log\n"
    )
    app = open_page("pages/models.py")
    bars = progress_bars(app)
    # The banner's bar (only the live build has one), then each build's own, newest first.
    assert (42, "training 42% (ETA 2 min 05 s)") in bars
    assert (90, "stopped at evaluating 90%: its process is gone") in bars
    assert metric(app, "Epoch") == "1/1" and metric(app, "Loss") == "0.4321" and metric(app, "Dev macro-F1") == "0.812"
    assert metric(app, "ETA") == "2 min 05 s"  # the live build's; the stopped one has none
    stopped = [w.value for w in app.warning if "This build stopped" in w.value]
    assert len(stopped) == 1 and "was evaluating at 90%" in stopped[0] and "2 min ago" in stopped[0]
    assert [m.value for m in app.markdown if "profile ·" in m.value] == [  # the newest build first
        f"**` {FULL} `** · full profile · running",
        f"**` {QUICK} `** · quick profile · stopped (its process is gone)",
    ]
    # The log's tail as a terminal would show it: a progress bar's last redraw only.
    assert "loading data\nepoch 1: 40%\nlast line of the log" in [code.value for code in app.code]
    # A live build of a model cannot be started again; the stopped one can.
    assert app.button(key=f"models-rebuild-{FULL}").disabled
    assert not app.button(key=f"models-rebuild-{QUICK}").disabled
    with pytest.raises(ValueError, match="running already"):
        resources.build_launcher().rebuild(FULL)


def test_rebuild_starts_the_build_detached_with_its_terminal_output_kept(
    models_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "import os, sys; print('build', sys.argv[1:], os.getsid(0) == os.getpid(), flush=True)"
    monkeypatch.setattr(
        model_control.BuildLauncher, "command", lambda self, profile: [sys.executable, "-c", script, profile]
    )
    app = open_page("pages/models.py")
    app.button(key=f"models-rebuild-{QUICK}").click().run()
    assert any("Rebuild of sentistream-quick started" in s.value for s in app.success), [e.value for e in app.error]
    console = model_control.console_path(models_settings.models_dir, QUICK)
    # Its own session (a Ctrl-C of the app does not reach it), its terminal output kept beside its log.
    wait_for(lambda: "build ['quick'] True" in console.read_text(), 30, "the build's output")
    assert console.read_text().startswith("rebuild of sentistream-quick started from the app")
    # Once it has run (and reported nothing), the Models page shows what it said.
    registry.write_progress(models_settings.models_dir, progress(QUICK, state="failed", error="it said why"))
    app.run()
    assert any("build ['quick'] True" in code.value for code in app.code)


def test_the_build_banner_shows_on_every_page_while_a_build_runs(models_settings: Settings) -> None:
    registry.write_progress(models_settings.models_dir, progress(QUICK, phase="training", percent=37.0, eta_seconds=75))
    for page in ("pages/live.py", "pages/producer.py", "pages/monitoring.py"):
        app = open_page(page)
        assert [i.value for i in app.info if i.value.startswith("Building")] == [
            "Building the quick model: training 37% (ETA 1 min 15 s)"
        ]
        assert (37, "epoch 1/1, loss 0.4321, dev macro-F1 0.812") in progress_bars(app)
    registry.write_progress(models_settings.models_dir, progress(QUICK, state="done", percent=100.0))
    app.run()
    assert not [i.value for i in app.info if i.value.startswith("Building")]


def test_switching_publishes_a_model_choice_and_the_page_follows_what_the_pipeline_serves(
    models_settings: Settings,
) -> None:
    app = open_page("pages/models.py")
    rerun_until(app, lambda app: "Chosen now: nothing in the app" in " ".join(c.value for c in app.caption), timeout=30)
    app.selectbox(key="models-choice").set_value(QUICK).run()
    before = time.time()
    app.button(key="models-switch").click().run()
    rerun_until(app, lambda app: any(s.value.startswith("Sent:") for s in app.success), timeout=30)

    records = read_all(models_settings, models_settings.topic_pipeline_control)
    assert [record.key() for record in records] == [MODEL_CHOICE_KEY]
    choice = ModelChoice.model_validate_json(records[0].value())
    assert choice.model == QUICK and before <= choice.chosen_at <= time.time() and choice.by.startswith("app on ")
    # The cluster monitor reads it back: the page shows the choice, not yet in effect (no pipeline serves it).
    rerun_until(app, lambda app: f"Chosen now: {QUICK}  (at" in texts(app), timeout=30)

    # A supervisor that serves it: the active model, and on every page the warning that it is the quick one.
    served = str(models_settings.models_dir / f"{QUICK}.pt")
    # (A long interval: the heartbeat stays live however slowly the test runs.)
    beat = heartbeat(worker(0), group=models_settings.consumer_group, interval=60, model=served, model_version="v7")
    publish(models_settings, beat)
    rerun_until(app, lambda app: metric(app, "Active model") == QUICK, timeout=30)
    assert metric(app, "Kind") == "quick (less accurate)"
    assert "Version v7, as the pipeline's supervisors report it." in [c.value for c in app.caption]
    live = open_page("pages/live.py")
    rerun_until(live, lambda app: any("quick model" in w.value for w in app.warning), timeout=30)
    f1 = registry.built_models(models_settings.models_dir)[0].card["test"]["macro_f1"]
    assert [w.value for w in live.warning if "quick model" in w.value] == [
        f"Sentiment is scored by the **quick model** ` {QUICK} `: held-out macro-F1 {f1:.3f}, less accurate than "
        "the full model."
    ]
    assert any(f"Model: {QUICK} (quick, less accurate)" in m.value for m in live.markdown)


def test_an_unavailable_pretrained_model_is_refused_with_its_reason(
    models_settings: Settings, offline_flair: Path
) -> None:
    app = open_page("pages/models.py")
    app.selectbox(key="models-choice").set_value("sentiment").run()
    rerun_until(app, lambda app: any("sentiment cannot be loaded here" in e.value for e in app.error), timeout=30)
    app.button(key="models-switch").click().run()
    assert any("The model was not switched" in e.value for e in app.error)
    reason = texts(app)
    assert "Not switched: Flair pretrained model 'sentiment' is not cached at " in reason
    assert str(offline_flair / "models" / "sentiment-en-mix-distillbert_4.pt") in reason
    assert "ConnectionError" in reason  # the refusing port's answer
    assert read_all(models_settings, models_settings.topic_pipeline_control) == []

    # Once it is in Flair's cache it may be chosen, network or not.
    cached = pretrained.cached_file("sentiment-fast")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a model")
    app.selectbox(key="models-choice").set_value("sentiment-fast").run()
    rerun_until(app, lambda app: any("sentiment-fast can be loaded here" in c.value for c in app.caption), timeout=30)
    app.button(key="models-switch").click().run()
    rerun_until(app, lambda app: any(s.value.startswith("Sent:") for s in app.success), timeout=30)
    records = read_all(models_settings, models_settings.topic_pipeline_control)
    assert [ModelChoice.model_validate_json(record.value()).model for record in records] == ["sentiment-fast"]


def test_a_pipeline_waiting_for_a_model_says_how_many_posts_wait(models_settings: Settings) -> None:
    send_posts(models_settings, make_posts(30))
    why = f"no model is built in {models_settings.models_dir} yet"
    waiting = heartbeat(
        worker(0, WorkerState.WAITING),
        worker(1, role="stats"),
        group=models_settings.consumer_group,
        interval=60,
        waiting_for_model=why,
    )
    publish(models_settings, waiting)
    for page in ("pages/analyze.py", "pages/models.py"):
        app = open_page(page)
        rerun_until(app, lambda app: any("waiting for a model" in i.value for i in app.info), timeout=30)
        assert [i.value for i in app.info if "waiting for a model" in i.value] == [
            "The pipeline is waiting for a model. 30 posts are waiting in Kafka and will be scored as soon as the "
            "model is ready."
        ]
        assert f"Waiting for a model: {why}" in texts(app)
        assert any("Pipeline waiting for a model" in m.value for m in app.markdown)
        assert not any(why in shown for shown in markdown_shown(app))  # Kafka data: text only
    assert metric(app, "Active model") == "none yet" and metric(app, "Posts waiting") == "30"


def test_the_live_page_shows_which_models_scored_the_posts_in_view(models_settings: Settings) -> None:
    producer = Producer(models_settings.kafka_client_config())
    scored = [(QUICK, "20261128-020000", 6), (FULL, "20261128-023000", 3), ("sentiment", None, 1)]
    for model, version, count in scored:
        for i in range(count):
            value = json.loads(result_json(f"{model}-{i}"))
            value["model"] = model
            if version is not None:
                value["model_version"] = version
            producer.produce(models_settings.topic_results, json.dumps(value).encode(), b"ada")
    assert producer.flush(10) == 0
    app = open_page("pages/live.py")
    rerun_until(app, lambda app: metric(app, "Posts") == "10", timeout=60)
    table = frame_with(app, "share")
    assert table[["model", "version", "posts"]].values.tolist() == [
        [QUICK, "20261128-020000", 6],
        [FULL, "20261128-023000", 3],
        ["sentiment", "–", 1],
    ]
    assert list(table["share"]) == [0.6, 0.3, 0.1]
    assert any(c.value == "Scored by: 3 models" for c in app.caption)
