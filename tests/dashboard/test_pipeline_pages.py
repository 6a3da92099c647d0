"""What the pages say about the pipeline, from its supervisors' heartbeats on the real status topic."""

from __future__ import annotations

import time

from common.contract import WorkerState
from common.settings import Settings
from tests.dashboard.apptest import markdown_shown, open_page, rerun_until, table, texts
from tests.dashboard.heartbeats import heartbeat, publish, worker

HOSTILE = "ValueError: <img src=x onerror=alert(1)> **bold** [link](http://evil) :red[colour] $x^2$"


def badges(app) -> list[str]:
    return [m.value for m in app.markdown if "-badge[" in m.value]


def test_a_crash_loop_names_the_worker_its_error_and_the_message_it_is_stuck_on(app_settings: Settings) -> None:
    stuck_at = f"{app_settings.topic_posts}[3]@1234"
    looping = worker(
        1,
        WorkerState.CRASH_LOOPING,
        restarts=4,
        restarts_total=11,
        last_exit="exit code 1",
        last_error=HOSTILE,
        last_error_at=time.time() - 3,
        stuck_at=stuck_at,
        careful=True,
    )
    publish(app_settings, heartbeat(worker(0), looping, group=app_settings.consumer_group, host="<b>gpu-host</b>"))
    for page in ("pages/live.py", "pages/monitoring.py"):
        app = open_page(page)
        rerun_until(app, lambda app: any("The pipeline is crash-looping" in e.value for e in app.error), timeout=30)
        assert any("Pipeline crash-looping" in badge for badge in badges(app))
        assert not any("not running" in w.value for w in app.warning)  # the old page's word for a crash loop
        shown = texts(app)
        assert (
            "classify worker 1 on <b>gpu-host</b> (supervisor pid 4242): crash-looping, 4 restarts in the last 5 min (11 since"
            in shown
        )
        assert f"Stuck at: {stuck_at}" in shown and "Careful mode" in shown and f"Last error: {HOSTILE}" in shown
        assert not any("evil" in text or "onerror" in text or "gpu-host" in text for text in markdown_shown(app))
    workers = table(app, "pipeline-workers")
    assert list(workers["state"]) == ["running", "crash-looping"]
    assert list(workers["stuck at"]) == ["", stuck_at] and list(workers["last error"]) == ["", HOSTILE]
    assert list(workers["careful"]) == ["", "yes"] and list(workers["reporting"]) == ["yes", "yes"]


def test_a_stopped_pipeline_and_a_vanished_supervisor_are_told_apart(app_settings: Settings) -> None:
    group = app_settings.consumer_group
    publish(app_settings, heartbeat(worker(0), group=group, age=120))  # killed two minutes ago: no word since
    app = open_page("pages/live.py")
    rerun_until(app, lambda app: any("The pipeline is not running" in w.value for w in app.warning), timeout=30)
    assert "Its supervisor last reported 2 min ago and did not say it was stopping" in texts(app)
    assert any("Pipeline not running" in badge for badge in badges(app))

    publish(app_settings, heartbeat(worker(0, WorkerState.STOPPED), group=group, age=1, stopping=True))
    rerun_until(
        app,
        lambda app: any("The pipeline was stopped" in w.value and "python -m pipeline" in w.value for w in app.warning),
        timeout=30,
    )
    assert any("Pipeline stopped" in badge for badge in badges(app))


def test_a_restarting_worker_is_not_a_stopped_pipeline(app_settings: Settings) -> None:
    restarting = worker(0, WorkerState.RESTARTING, restarts=1, restarts_total=1, last_exit="SIGKILL")
    publish(app_settings, heartbeat(restarting, worker(1), group=app_settings.consumer_group))
    app = open_page("pages/monitoring.py")
    rerun_until(app, lambda app: any("starting it again" in w.value for w in app.warning), timeout=30)
    assert any("Pipeline restarting" in badge for badge in badges(app))
    assert "Last exit: SIGKILL" in texts(app)
    assert list(table(app, "pipeline-workers")["state"]) == ["restarting", "running"]
