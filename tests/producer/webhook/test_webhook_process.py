"""``python -m producer.webhook`` as people run it: posts written, status published, secrets in no log, a clean
stop on SIGTERM."""

from __future__ import annotations

import signal
import urllib.parse
from pathlib import Path

from pydantic import SecretStr

from common.contract import SourceState, SourceStatus
from common.settings import Settings
from tests.processes import free_port, running
from tests.producer.webhook.server import call, healthy, post_json
from tests.topic_reader import read_all
from tests.waiting import wait_for

TOKEN = "bearer-s3cret"
VERIFY_TOKEN = "verify-s3cret"


def test_the_webhook_process_writes_publishes_its_status_and_logs_no_secret(settings: Settings, tmp_path: Path) -> None:
    configured = settings.model_copy(
        update={
            "webhook_token": SecretStr(TOKEN),
            "facebook_verify_token": SecretStr(VERIFY_TOKEN),
            "status_interval_seconds": 0.5,
        }
    )
    port, log = free_port(), tmp_path / "webhook.log"
    url = f"http://127.0.0.1:{port}"
    with running(configured, "producer.webhook", "--port", str(port), log=log) as process:
        wait_for(lambda: healthy(url) or process.poll() is not None, 60, "the webhook to answer /health")
        assert process.poll() is None, log.read_text()
        accepted = post_json(
            f"{url}/posts", {"id": "w-1", "author": "ann", "text": "hi"}, {"Authorization": f"Bearer {TOKEN}"}
        )
        refused = post_json(f"{url}/posts", {"id": "w-2", "author": "ann", "text": "hi"}, {"Authorization": "Bearer x"})
        query = urllib.parse.urlencode(
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "7"}
        )
        verified = call(f"{url}/facebook?{query}")
    # A graceful stop: uvicorn finishes its requests and the app's shutdown, then re-raises the signal it caught.
    assert process.returncode == -signal.SIGTERM
    assert (accepted.status, refused.status, verified.status, verified.body) == (202, 401, 200, b"7")
    assert [message.key() for message in read_all(settings, settings.topic_posts)] == [b"ann"]
    statuses = [SourceStatus.model_validate_json(m.value()) for m in read_all(settings, settings.topic_source_status)]
    assert statuses[-1].state == SourceState.STOPPED
    assert (statuses[-1].name, statuses[-1].posts, statuses[-1].skipped) == ("webhook", 1, {"unauthorized": 1})
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert TOKEN not in text and VERIFY_TOKEN not in text
