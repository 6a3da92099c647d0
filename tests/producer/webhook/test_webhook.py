"""The webhook against the real broker: what it acknowledges is in the raw topic exactly once, and only that."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

from common.contract import Post
from common.settings import Settings
from common.topics import admin_client
from producer.webhook.writer import AcknowledgedWriter
from tests.processes import free_port
from tests.producer.webhook.server import call, post_json, serving
from tests.topic_reader import read_all
from tests.waiting import wait_for


def posts_for(author: str, count: int, prefix: str = "") -> list[dict]:
    return [{"id": f"{prefix}{author}-{n}", "author": author, "text": f"post {n} by {author}"} for n in range(count)]


def written(settings: Settings) -> list[Post]:
    messages = read_all(settings, settings.topic_posts)
    posts = [Post.model_validate_json(message.value()) for message in messages]
    assert all(message.key() == post.author.encode() for message, post in zip(messages, posts, strict=True))
    return posts


def test_one_post_is_in_the_topic_keyed_by_author_when_the_answer_comes(settings: Settings) -> None:
    with serving(settings) as url:
        answer = post_json(f"{url}/posts", {"id": "p-1", "author": "ann", "text": "great day", "created_at": 1.5e9})
        health = call(f"{url}/health").json()
    assert (answer.status, answer.json()) == (202, {"accepted": ["p-1"]})
    [post] = written(settings)
    assert (post.id, post.author, post.source, post.text, post.created_at) == (
        "p-1",
        "ann",
        "webhook",
        "great day",
        1.5e9,
    )
    assert health == {"status": "ok", "accepted": 1, "rejected": 0, "errors": 0}


def test_a_batch_is_written_whole_and_its_ids_answered_in_order(settings: Settings) -> None:
    batch = [*posts_for("bob", 40), {"author": "cy", "text": "no id given", "source": "crm"}]
    with serving(settings) as url:
        answer = post_json(f"{url}/posts", batch)
    assert answer.status == 202
    ids = answer.json()["accepted"]
    assert ids[:40] == [item["id"] for item in batch[:40]] and len(ids) == 41
    posts = {post.id: post for post in written(settings)}
    assert sorted(posts) == sorted(ids)
    assert (posts[ids[40]].author, posts[ids[40]].source) == ("cy", "crm")


def test_an_invalid_batch_writes_nothing(settings: Settings) -> None:
    with serving(settings) as url:
        refused = post_json(f"{url}/posts", [*posts_for("dee", 5), {"id": "bad", "author": "dee"}])
        marker = post_json(f"{url}/posts", {"id": "marker", "author": "eve", "text": "after the refusal"})
    assert (refused.status, marker.status) == (400, 202)
    assert [post.id for post in written(settings)] == ["marker"]


def test_a_retried_batch_is_acknowledged_without_a_second_copy(settings: Settings) -> None:
    batch = posts_for("fay", 10)
    with serving(settings) as url:
        first = post_json(f"{url}/posts", batch)
        again = post_json(f"{url}/posts", batch)
        overlapping = post_json(f"{url}/posts", batch[5:] + posts_for("gus", 3))
    assert (first.status, again.status, overlapping.status) == (202, 202, 202)
    assert first.json() == again.json()
    assert sorted(post.id for post in written(settings)) == sorted(item["id"] for item in batch + posts_for("gus", 3))


def test_many_clients_at_once_lose_nothing_and_duplicate_nothing(settings: Settings) -> None:
    clients, requests, per_request = 16, 8, 10

    def client(number: int) -> list[str]:
        accepted = []
        for request in range(requests):
            batch = posts_for(f"client{number}", per_request, prefix=f"r{request}-")
            answer = post_json(f"{url}/posts", batch)
            assert answer.status == 202, answer.body
            accepted += answer.json()["accepted"]
        # Every client also sends one batch every other client sends too, at about the same moment.
        shared = post_json(f"{url}/posts", posts_for("everyone", per_request))
        assert shared.status == 202, shared.body
        return accepted + shared.json()["accepted"]

    with serving(settings) as url, ThreadPoolExecutor(clients) as pool:
        accepted = [post_id for ids in pool.map(client, range(clients)) for post_id in ids]
        health = call(f"{url}/health").json()
    expected = {f"r{r}-client{c}-{n}" for c in range(clients) for r in range(requests) for n in range(per_request)}
    expected |= {f"everyone-{n}" for n in range(per_request)}
    assert set(accepted) == expected
    ids = [post.id for post in written(settings)]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    # Counted once each: the shared batch's copies were acknowledged as already written.
    assert health["accepted"] == len(expected) and health["errors"] == 0


def test_kafka_unreachable_gets_503_to_retry(tmp_path: Path) -> None:
    unreachable = Settings(
        bootstrap_servers=f"127.0.0.1:{free_port()}", state_dir=tmp_path, webhook_delivery_timeout_seconds=1.0
    )
    with serving(unreachable) as url:
        answer = post_json(f"{url}/posts", posts_for("hal", 3))
        health = call(f"{url}/health").json()
    assert answer.status == 503
    assert answer.json()["error"] == "kafka_unavailable"
    assert "3 of 3 posts not acknowledged" in answer.json()["detail"]
    assert answer.headers["Retry-After"] == "5"
    assert (health["accepted"], health["errors"]) == (0, 1)


def test_posts_refused_while_their_topic_is_missing_are_written_once_by_the_retries(settings: Settings) -> None:
    # The broker does not create topics on demand: until the topic exists, Kafka acknowledges nothing.
    missing = settings.model_copy(
        update={
            "topic_posts": f"{settings.topic_posts}.late-{uuid.uuid4().hex[:6]}",
            "webhook_delivery_timeout_seconds": 1.0,
        }
    )
    batch = posts_for("ivy", 20)
    with serving(missing) as url:
        assert post_json(f"{url}/posts", batch).status == 503
        admin = admin_client(settings)
        admin.create_topics([NewTopic(missing.topic_posts, 3, 1)])[missing.topic_posts].result()
        wait_for(lambda: post_json(f"{url}/posts", batch).status == 202, 60, "a retry to be accepted")
    assert sorted(post.id for post in written(missing)) == sorted(item["id"] for item in batch)


def test_a_fatal_producer_error_is_survived_with_a_new_producer(settings: Settings) -> None:
    writer = AcknowledgedWriter(settings)
    with serving(settings, writer) as url:
        assert post_json(f"{url}/posts", posts_for("jo", 2)).status == 202
        broken = writer._producer
        writer._on_error(
            KafkaError(KafkaError._FATAL, "injected: the idempotent producer lost its guarantees", fatal=True)
        )
        after = post_json(f"{url}/posts", posts_for("kim", 2))
        assert writer._producer is not broken
    assert after.status == 202
    assert sorted(post.id for post in written(settings)) == ["jo-0", "jo-1", "kim-0", "kim-1"]
