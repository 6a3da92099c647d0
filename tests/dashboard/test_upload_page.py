"""Uploads on the Producer page: bounded, parsed by the one file reader, and their names shown as text only."""

from __future__ import annotations

import json
import tomllib

import pytest

from common.settings import PROJECT_ROOT, Settings
from tests.dashboard.apptest import markdown_shown, metric, open_page, rerun_until, texts
from tests.dashboard.conftest import use_settings
from tests.topic_reader import read_all

HOSTILE_NAME = "**bold** <img src=x onerror=alert(1)> [x](http://evil) :red[x].json"


def upload_and_start(app, name: str, content: bytes):
    app.radio(key="producer-source").set_value("upload").run()
    app.file_uploader(key="producer-file").set_value((name, content, "application/octet-stream")).run()
    return app.button(key="producer-start").click().run()


def test_the_upload_limits_are_configured_and_stated_on_the_page(app_settings: Settings) -> None:
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    megabytes = config["server"]["maxUploadSize"]
    assert 1 <= megabytes <= 200
    app = open_page("pages/producer.py")
    app.radio(key="producer-source").set_value("upload").run()
    assert any(f"At most {megabytes:,} MB and {app_settings.upload_max_rows:,} rows" in c.value for c in app.caption)


def test_a_json_array_upload_is_replayed_and_its_name_shown_as_text(app_settings: Settings) -> None:
    rows = [{"text": "great service", "author": "ann"}, {"text": "   "}, {"text": "slow train", "source": "forum"}]
    app = upload_and_start(open_page("pages/producer.py"), HOSTILE_NAME, json.dumps(rows).encode())
    assert not app.error, [e.value for e in app.error] + [texts(app)]
    rerun_until(app, lambda app: int((metric(app, "Delivered") or "0").replace(",", "")) >= 2, timeout=30)
    assert any(header.value == "Running — Uploaded file" for header in app.subheader)
    assert f"{HOSTILE_NAME}: 2 posts from 3 rows; 1 skipped, e.g. row 2: text:" in texts(app)
    assert not any("evil" in text or "onerror" in text for text in markdown_shown(app))
    app.button(key="producer-stop").click().run()
    rerun_until(app, lambda app: any(header.value == "Stopped — Uploaded file" for header in app.subheader), timeout=30)
    app.button(key="producer-start").click().run()  # the same upload again: read from its start
    assert not app.error, texts(app)
    rerun_until(app, lambda app: any(header.value == "Running — Uploaded file" for header in app.subheader), timeout=30)
    app.button(key="producer-stop").click().run()
    rerun_until(app, lambda app: any(header.value.startswith("Stopped") for header in app.subheader), timeout=30)
    posts = [json.loads(message.value()) for message in read_all(app_settings, app_settings.topic_posts)]
    assert {(post["author"], post["text"]) for post in posts} == {
        ("ann", "great service"),
        ("anonymous-02", "slow train"),
    }


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        (
            "posts.csv",
            b"text\n" + b"".join(b"post %d\n" % i for i in range(6)),
            "more than 5 rows, the most one file may hold",
        ),
        ("posts.json", b'{"text": "one object a line"}\n{"text": "is JSON Lines"}\n', "must hold an array of objects"),
        ("posts.csv", b"message\nhello\n", "column 'text' not found; the file has columns: message"),
    ],
)
def test_an_unusable_upload_is_refused_with_the_reason(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, says: str
) -> None:
    use_settings(app_settings.model_copy(update={"upload_max_rows": 5}), monkeypatch)
    app = upload_and_start(open_page("pages/producer.py"), name, content)
    assert any("did not start" in e.value for e in app.error)
    assert says in texts(app)
    assert read_all(app_settings, app_settings.topic_posts) == []
