"""The app in a real browser: ``streamlit run app.py`` against the test Kafka and the real pipeline.

Drives headless Chromium (the Debian ``chromium`` package) with Playwright: starts the producer
from the page, waits for the live charts, analyses a text, and screenshots every page (into the
test's temp dir, copied to ``screenshots/``, which git ignores).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from common.settings import PROJECT_ROOT, Settings
from tests.conftest import require_tool
from tests.processes import running, streamlit_served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = PROJECT_ROOT / "screenshots"
CLOCK = re.compile(r"Data from (\d\d:\d\d:\d\d)")


@pytest.fixture
def chromium() -> Path:
    require_tool(CHROMIUM.exists(), str(CHROMIUM), "apt-get install -y chromium (scripts/install-test-tools.sh)")
    return CHROMIUM


@pytest.fixture
def app_settings(settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(update={"model": str(tiny_model_path), "producer_rate": 20.0, "batch_max_wait_ms": 50})


@pytest.fixture
def app_url(app_settings: Settings) -> Iterator[str]:
    with streamlit_served(["-m", "streamlit", "run", "app.py"], app_settings.child_environment()) as url:
        yield url


def test_the_dashboard_in_a_browser(chromium: Path, app_settings: Settings, app_url: str, tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)

    def screenshot(page, name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path))
        shutil.copy(path, SCREENSHOTS / path.name)

    with running(app_settings, "pipeline", "--workers", "1", "--no-stats"), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1500})
        # Generous waits: the box may be busy (the first Plotly chart loads its JavaScript), and a wait costs
        # nothing when the page is quick.
        page.set_default_timeout(30_000)
        sync_api.expect.set_options(timeout=30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        # A deep link as the server's first visit still gets app.py's navigation (not Streamlit's pages/ folder mode).
        page.goto(f"{app_url}/producer")
        nav_titles = ["Live sentiment", "Producer", "Analyze text", "Kafka monitoring"]
        sync_api.expect(page.get_by_test_id("stSidebarNavLink")).to_contain_text(nav_titles)
        page.get_by_role("button", name="Start").click()
        sync_api.expect(page.get_by_text("Running — Shipped data set")).to_be_visible()
        sync_api.expect(page.get_by_role("button", name="Stop")).to_be_enabled()
        screenshot(page, "producer")

        page.goto(app_url)
        # The live page shows its headline numbers and six charts once results flow (the model loads first).
        sync_api.expect(page.get_by_test_id("stMetric").filter(has_text="Posts")).to_be_visible(timeout=120_000)
        sync_api.expect(page.get_by_test_id("stPlotlyChart")).to_have_count(6)
        # Two refreshes with more posts each time: the page follows the stream (and the charts show lines).
        posts = page.get_by_test_id("stMetric").filter(has_text="Posts").get_by_test_id("stMetricValue")
        counts = [int(posts.inner_text().replace(",", ""))]
        for _ in range(2):
            sync_api.expect(posts).not_to_have_text(f"{counts[-1]:,}")
            counts.append(int(posts.inner_text().replace(",", "")))
        assert counts == sorted(counts), f"the count of posts went down: {counts}"
        screenshot(page, "live")

        page.goto(f"{app_url}/analyze")
        page.get_by_test_id("stTextArea").locator("textarea").fill("What a wonderful, lovely day, I love it!")
        page.get_by_role("button", name="Analyze").click()
        label = page.get_by_test_id("stMetric").filter(has_text="Label").get_by_test_id("stMetricValue")
        sync_api.expect(label).to_have_text(re.compile(r"(POSITIVE|NEUTRAL|NEGATIVE)$"), timeout=30_000)
        sync_api.expect(page.get_by_test_id("stMetric").filter(has_text="Latency")).to_be_visible()
        screenshot(page, "analyze")

        page.goto(f"{app_url}/monitoring")
        sync_api.expect(page.get_by_test_id("stMetric").filter(has_text="Pipeline workers")).to_contain_text("1")
        sync_api.expect(page.get_by_text("Topics and partitions")).to_be_visible()
        # A second poll of the cluster (per-partition throughput needs two): the data's clock moves on.
        data_from = page.get_by_text(CLOCK)
        first = CLOCK.search(data_from.inner_text()).group(1)
        sync_api.expect(data_from).to_have_text(re.compile(rf"Data from (?!{first})\d\d:\d\d:\d\d"))
        screenshot(page, "monitoring")

        page.goto(f"{app_url}/producer")
        page.get_by_role("button", name="Stop").click()
        sync_api.expect(page.get_by_text("Stopped — Shipped data set")).to_be_visible()
        browser.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
