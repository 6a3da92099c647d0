"""The pages as the tests drive them: Streamlit's AppTest opened on a page, and what a person would read off it."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from streamlit.testing.v1 import AppTest

from common.settings import PROJECT_ROOT
from tests.waiting import wait_for

PAGES = ["pages/live.py", "pages/producer.py", "pages/analyze.py", "pages/models.py", "pages/monitoring.py"]


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def metric(app: AppTest, label: str) -> str | None:
    return next((m.value for m in app.metric if m.label.endswith(label) or f"[{label}]" in m.label), None)


# A table by a column only it has (AppTest does not see a read-only table's key); the lag tables in page order.
TABLES = {
    "pipeline-workers": ("supervisor", 0),
    "brokers": ("controller", 0),
    "partitions": ("under-replicated", 0),
    "pipeline-lag": ("committed", 0),
    "statistics-lag": ("committed", 1),
    "dead-letters": ("preview", 0),
    "background-threads": ("thread", 0),
}


def table(app: AppTest, name: str) -> pd.DataFrame | None:
    column, index = TABLES[name]
    found = [frame.value for frame in app.dataframe if column in frame.value.columns]
    return found[index] if index < len(found) else None


def markdown_shown(app: AppTest) -> list[str]:
    """Everything rendered as Markdown: text, badges, captions, headers, metric labels, alerts."""
    alerts = [*app.error, *app.warning, *app.info, *app.success]
    return (
        [m.value for m in app.markdown]
        + [c.value for c in app.caption]
        + [h.value for h in [*app.subheader, *app.title]]
        + [m.label for m in app.metric]
        + [alert.value for alert in alerts]
    )


def texts(app: AppTest) -> str:
    return "\n".join(t.value for t in app.text)


def rerun_until(app: AppTest, condition: Callable[[AppTest], bool], timeout: float = 120.0) -> None:
    """Rerun the page every second, as its own refresh does, until ``condition`` holds; a timeout says what it showed."""

    def rerun_and_check() -> bool:
        app.run()
        assert not app.exception, app.exception
        return condition(app)

    if condition(app):
        return
    try:
        wait_for(rerun_and_check, timeout, "the page", interval=1.0)
    except AssertionError as failure:
        if app.exception:
            raise
        tables = [frame.value.to_dict("list") for frame in app.dataframe][:1]
        shown = f"metrics: {[(m.label, m.value) for m in app.metric]}; {tables}; {[e.value for e in app.error]}"
        raise AssertionError(f"{failure}; {shown}") from None
