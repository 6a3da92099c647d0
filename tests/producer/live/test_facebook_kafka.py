"""``python -m producer --source facebook`` against the real broker and a local Graph API: each post in the raw
topic exactly once across a restart of the process, its status on the status topic, the token in no log."""

from __future__ import annotations

from pathlib import Path

from common.contract import Post, SourceState, SourceStatus
from common.settings import Settings
from tests.processes import running
from tests.producer.live.fake_graph import PAGE_ID, TOKEN, VERSION, graph_object, serving
from tests.topic_reader import read_all
from tests.waiting import wait_for


def test_the_page_source_process_sends_each_post_once_across_a_restart(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "facebook.log"
    with serving() as graph:
        environment = {
            "SENTISTREAM_FACEBOOK_GRAPH_URL": graph.base_url,
            "SENTISTREAM_FACEBOOK_API_VERSION": VERSION,
            "SENTISTREAM_FACEBOOK_PAGE_ID": PAGE_ID,
            "SENTISTREAM_FACEBOOK_PAGE_TOKEN": TOKEN,
            "SENTISTREAM_FACEBOOK_POLL_INTERVAL_SECONDS": "0.2",
            "SENTISTREAM_STATUS_INTERVAL_SECONDS": "0.5",
        }
        graph.publish_posts(graph_object(f"{PAGE_ID}_1", 10, "first"), graph_object(f"{PAGE_ID}_2", 20, "second"))
        graph.publish_comment(f"{PAGE_ID}_2", graph_object("2_c1", 25, "a comment", writer="77"))
        with running(settings, "producer", "--source", "facebook", log=log, extra_env=environment):
            read_all(settings, settings.topic_posts, timeout=120, at_least=3)
        graph.publish_posts(graph_object(f"{PAGE_ID}_3", 20, "same second as the second"))
        graph.publish_comment(f"{PAGE_ID}_2", graph_object("2_c2", 30, "another comment", writer="77"))
        with running(settings, "producer", "--source", "facebook", log=log, extra_env=environment):
            read_all(settings, settings.topic_posts, timeout=120, at_least=5)
            polls = len(graph.calls_to("/feed"))
            wait_for(lambda: len(graph.calls_to("/feed")) > polls + 2, 60, "more polls, which find nothing new")
    messages = read_all(settings, settings.topic_posts)
    posts = [Post.model_validate_json(message.value()) for message in messages]
    assert sorted(post.id for post in posts) == [
        "facebook:1000_1",
        "facebook:1000_2",
        "facebook:1000_3",
        "facebook:2_c1",
        "facebook:2_c2",
    ]
    assert all(message.key() == post.author.encode() for message, post in zip(messages, posts, strict=True))
    statuses = [SourceStatus.model_validate_json(m.value()) for m in read_all(settings, settings.topic_source_status)]
    assert statuses[-1].state == SourceState.STOPPED and statuses[-1].network == "facebook"
    assert any(status.state == SourceState.CONNECTED for status in statuses)
    assert TOKEN not in log.read_text() and all(TOKEN not in m.value().decode() for m in messages)
