"""The Models page and the model banners in a real browser: ``streamlit run app.py`` against the test Kafka.

The first minutes of a fresh install, as the app shows them: first the quick model builds while the pipeline waits
for it and posts pile up in Kafka (the banner on every page), then the quick model is served while the full one
builds (the Models page). Heartbeats and build progress are written here as the pipeline and the build write
them; the model is the real tiny one. Flair's server is a local port that refuses: never the internet.
Screenshots go to ``screenshots/`` (ignored by git), like the other browser test's.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from common.contract import WorkerState
from common.settings import Settings
from sentiment_model import pretrained, registry
from sentiment_model.registry import BuildProgress
from tests.conftest import require_tool
from tests.dashboard.conftest import make_posts
from tests.dashboard.heartbeats import heartbeat, publish, worker
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.processes import free_port, streamlit_served
from tests.topic_writer import send_posts

QUICK, FULL = registry.QUICK_MODEL, registry.FULL_MODEL
# Runs the app as `streamlit run` does, with Flair's model URLs pointing where the test says (argv[1]).
LAUNCH = (
    "import sys; from sentiment_model import pretrained; "
    "pretrained.PRETRAINED_URLS.update(dict(pair.split('=', 1) for pair in sys.argv[1].split(','))); "
    "sys.argv = ['streamlit', 'run', 'app.py', *sys.argv[2:]]; "
    "from streamlit.web.cli import main; main()"
)


@pytest.fixture
def chromium() -> Path:
    require_tool(CHROMIUM.exists(), str(CHROMIUM), "apt-get install -y chromium (scripts/install-test-tools.sh)")
    return CHROMIUM


@pytest.fixture
def app_settings(settings: Settings, tiny_model_path: Path, tmp_path: Path) -> Settings:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    return settings.model_copy(update={"models_dir": models_dir, "model": "auto", "monitor_interval_seconds": 1.0})


@pytest.fixture
def app_url(app_settings: Settings, tmp_path: Path) -> Iterator[str]:
    refusing = f"http://127.0.0.1:{free_port()}"
    urls = ",".join(f"{name}={refusing}/{url.rsplit('/', 1)[1]}" for name, url in pretrained.PRETRAINED_URLS.items())
    environment = {**app_settings.child_environment(), "FLAIR_CACHE_ROOT": str(tmp_path / "flair-cache")}
    with streamlit_served(["-c", LAUNCH, urls], environment) as url:
        yield url


def building(name: str, phase: str, percent: float, eta: float, **fields: object) -> BuildProgress:
    now = time.time()
    values: dict[str, object] = {
        "profile": registry.PROFILE_OF[name],
        "state": "running",
        "phase": phase,
        "percent": percent,
        "eta_seconds": eta,
        "started_at": now - 240,
        "updated_at": now - 1,
        "pid": os.getpid(),  # this test: a live build for as long as the page is looked at
    } | fields
    return BuildProgress(name=name, **values)


def test_the_models_page_and_the_build_banner_in_a_browser(
    chromium: Path, app_settings: Settings, app_url: str, tiny_model_path: Path, tmp_path: Path
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    models_dir = app_settings.models_dir
    group = app_settings.consumer_group

    def screenshot(page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path))
        shutil.copy(path, SCREENSHOTS / path.name)
        return path

    # The first minutes: no model yet, the quick one building, posts waiting in Kafka.
    registry.write_progress(
        models_dir,
        building(QUICK, "training", 64.0, 50.0, epoch=13, epochs=20, loss=0.5123, dev_macro_f1=0.7412),
    )
    supervisor = "supervisor-1"
    why = f"no model is built in {models_dir} yet (the build makes the quick one first, in minutes)"
    publish(
        app_settings,
        heartbeat(
            worker(0, WorkerState.WAITING),
            worker(1, role="stats"),
            group=group,
            instance=supervisor,
            interval=60,
            host="sentistream-host",
            waiting_for_model=why,
        ),
    )
    send_posts(app_settings, make_posts(240))

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.set_default_timeout(30_000)
        sync_api.expect.set_options(timeout=30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(f"{app_url}/analyze")
        sync_api.expect(page.get_by_text("Building the quick model: training 64% (ETA 50 s)")).to_be_visible()
        sync_api.expect(
            page.get_by_text("240 posts are waiting in Kafka and will be scored as soon as the model is ready")
        ).to_be_visible()
        sync_api.expect(page.get_by_text(f"Waiting for a model: {why}")).to_be_visible()
        sync_api.expect(page.get_by_test_id("stProgress")).to_have_count(1)
        screenshot(page, "build-banner")

        # Later: the quick model is built and served, the full one builds.
        (models_dir / f"{QUICK}.pt").symlink_to(tiny_model_path)
        shutil.copy(registry.card_path(tiny_model_path), registry.card_path(models_dir / f"{QUICK}.pt"))
        quick_f1 = registry.read_card(models_dir / f"{QUICK}.pt")["test"]["macro_f1"]
        registry.write_progress(
            models_dir, building(QUICK, "writing card", 100.0, 0.0, state="done", test_macro_f1=quick_f1, pid=None)
        )
        registry.write_progress(
            models_dir,
            building(FULL, "training", 37.0, 640.0, epoch=1, epochs=1, loss=0.4127, dev_macro_f1=0.8311),
        )
        registry.log_path(models_dir, FULL).write_text(
            "".join(
                f"2026-11-28 03:{minute:02d}:00,000 INFO [4242] flair: epoch 1 - iter {i}/2149 - loss "
                f"0.{4500 - i:04d} - time (sec): {60 * (minute + 1)}.0 - samples/sec: 26.7 - lr: 0.000045\n"
                for minute, i in enumerate(range(100, 900, 100))
            )
        )
        publish(
            app_settings,
            heartbeat(
                worker(0),
                worker(1, role="stats"),
                group=group,
                instance=supervisor,
                interval=60,
                host="sentistream-host",
                model=str(models_dir / f"{QUICK}.pt"),
            ),
        )
        page.set_viewport_size({"width": 1600, "height": 1200})
        page.goto(f"{app_url}/models")
        sync_api.expect(page.get_by_test_id("stSidebarNavLink")).to_contain_text(
            ["Live sentiment", "Producer", "Analyze text", "Models", "Kafka monitoring"]
        )
        sync_api.expect(page.get_by_text("Building the full model: training 37% (ETA 10 min)")).to_be_visible()
        metric = page.get_by_test_id("stMetric").filter(has_text="Active model")
        sync_api.expect(metric.get_by_test_id("stMetricValue")).to_have_text(QUICK)
        sync_api.expect(page.get_by_text("The quick model", exact=False).first).to_be_visible()
        # The card's two charts (the confusion matrix and accuracy by source), drawn.
        sync_api.expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)
        sync_api.expect(page.locator(".stPlotlyChart .main-svg").first).to_be_visible()
        sync_api.expect(page.get_by_text("Flair pretrained model 'sentiment' is not cached at")).to_be_visible()
        sync_api.expect(page.get_by_text("iter 800/2149")).to_be_visible()
        # The whole page: Streamlit scrolls inside its main block, so the window is made as tall as the page.
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1600, "height": height})
        sync_api.expect(page.locator(".stPlotlyChart .main-svg").first).to_be_visible()
        screenshot(page, "models-page")
        browser.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
