"""Any producer can feed the pipeline (issue 13): posts written as a foreign producer writes them, on real Kafka.

A command-line client or another system writes JSON to the raw topic: without a key (the author is in the
payload), without ``created_at`` (the message's Kafka timestamp is the post's time), with a ``lang``. Next to
them, what must still fail: no key and no author, a language the model does not read. The real pipeline (one
classifier worker, the real tiny Flair model) runs under either processing guarantee, and every raw message
must end as exactly one result or one dead letter, each keyed by its post's author.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer

from common.contract import DeadLetter, RejectReason, SentimentResult
from common.settings import Settings
from tests.faults.support import log_problems, wait_until_caught_up
from tests.processes import running
from tests.topic_reader import read_all

R = RejectReason
RESULT = "result"
# An hour ago, so that a post's time taken from its message is never the time the pipeline read it.
FIRST_TIMESTAMP_MS = (int(time.time()) - 3600) * 1000 + 123
TEXTS = ["I love this, what a day!", "This is awful, truly the worst.", "The bus leaves at nine.", "Best news ever"]


@dataclass(frozen=True)
class Sent:
    key: bytes | None
    document: dict
    expected: RejectReason | str  # its dead letter's reason, or RESULT
    timestamp_ms: int = 0  # set when sent

    @property
    def post_id(self) -> str:
        return self.document["id"]


def post(post_id: str, **fields: object) -> dict:
    """A post as a foreign producer writes it: no created_at unless given; fields given as ... are left out."""
    document = {"id": post_id, "author": "ada", "source": "kcat", "text": TEXTS[len(post_id) % len(TEXTS)], **fields}
    return {name: value for name, value in document.items() if value is not ...}


def stream() -> list[Sent]:
    """The cases named, then a mixed stream of keyed and unkeyed posts of several authors, some to be refused."""
    named = [
        Sent(b"ada", post("keyed", created_at=1_700_000_000.5), RESULT),
        Sent(None, post("unkeyed", author="bo"), RESULT),
        Sent(b"", post("empty-key", author="cy"), RESULT),
        Sent(None, post("no-author", author=...), R.MISSING_FIELD),
        Sent(None, post("german", author="hans", text="Was für ein schöner Tag", lang="de"), R.UNSUPPORTED_LANGUAGE),
        Sent(
            b"zoe",
            post("french-keyed", author="zoe", text="Quelle belle journée", lang="fr-CA"),
            R.UNSUPPORTED_LANGUAGE,
        ),
        Sent(None, post("british", author="ivy", lang="en-GB"), RESULT),
        Sent(None, post("lang-null", author="jo", lang=None), RESULT),
        Sent(None, post("lang-und", author="kim", lang="und"), RESULT),
    ]
    mixed = []
    for index in range(90):
        author = f"author-{index % 7}"
        key = [None, author.encode(), b""][index % 3]
        if index % 10 == 4:
            mixed.append(Sent(key, post(f"m{index}", author=author, lang="ja"), R.UNSUPPORTED_LANGUAGE))
        elif index % 10 == 7:
            mixed.append(Sent(key, post(f"m{index}", author=...), R.MISSING_FIELD))
        else:
            mixed.append(Sent(key, post(f"m{index}", author=author, lang=["en", "en-US", None][index % 3]), RESULT))
    return named + mixed


def send(settings: Settings, messages: list[Sent]) -> dict[tuple[int, int], Sent]:
    """Each message with a Kafka timestamp of its own; returns them by where they landed (partition, offset)."""
    producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True})
    landed: dict[tuple[int, int], Sent] = {}
    for index, sent in enumerate(messages):
        timestamped = Sent(sent.key, sent.document, sent.expected, FIRST_TIMESTAMP_MS + index * 1000)

        def note(error: KafkaError | None, message: Message, sent: Sent = timestamped) -> None:
            assert error is None, error
            landed[(message.partition(), message.offset())] = sent

        value = json.dumps(sent.document).encode()
        producer.produce(
            settings.topic_posts, key=sent.key, value=value, timestamp=timestamped.timestamp_ms, on_delivery=note
        )
    assert producer.flush(30) == 0
    return landed


@pytest.fixture(params=["at-least-once", "exactly-once"])
def producer_settings(request: pytest.FixtureRequest, settings: Settings, tiny_model_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "model": str(tiny_model_path),
            "batch_size": 16,
            "batch_max_wait_ms": 50,
            "processing_guarantee": request.param,
        }
    )


def test_posts_from_any_producer_each_end_as_one_result_or_one_dead_letter_keyed_by_author(
    producer_settings: Settings, tmp_path: Path
) -> None:
    settings = producer_settings
    log = tmp_path / "pipeline.log"
    messages = stream()
    with running(settings, "pipeline", "--workers", "1", "--no-stats", log=log) as pipeline:
        landed = send(settings, messages)
        wait_until_caught_up(settings, settings.consumer_group, settings.topic_posts, timeout=240)
        assert pipeline.poll() is None
    assert pipeline.returncode == 0, f"the pipeline did not stop cleanly; log: {log}"
    assert not log_problems(log), f"errors logged: {log_problems(log)[:3]}"
    assert len(landed) == len(messages)

    results: dict[str, list[tuple[bytes | None, SentimentResult]]] = defaultdict(list)
    for message in read_all(settings, settings.topic_results):
        result = SentimentResult.model_validate_json(message.value())
        results[result.post_id].append((message.key(), result))
    letters: dict[tuple[int, int], list[tuple[bytes | None, DeadLetter]]] = defaultdict(list)
    for message in read_all(settings, settings.topic_dead_letters):
        letter = DeadLetter.model_validate_json(message.value())
        letters[(letter.partition, letter.offset)].append((message.key(), letter))

    outcomes = {
        sent.post_id: [letter.reason for _key, letter in letters.get(origin, [])]
        + [RESULT for _key, _result in results.get(sent.post_id, [])]
        for origin, sent in landed.items()
    }
    assert outcomes == {sent.post_id: [sent.expected] for sent in landed.values()}, "one outcome each, the right one"
    assert sum(map(len, results.values())) + sum(map(len, letters.values())) == len(messages), "outputs for nothing"

    for origin, sent in landed.items():
        author = sent.document.get("author")
        if sent.expected == RESULT:
            [(key, result)] = results[sent.post_id]
            assert key == author.encode() and result.author == author, "a result is keyed by its author"
            assert result.produced_at == sent.timestamp_ms / 1000
            assert result.created_at == sent.document.get("created_at", sent.timestamp_ms / 1000), (
                "a post without created_at was created at its message's Kafka timestamp"
            )
        else:
            [(key, letter)] = letters[origin]
            assert letter.key == (sent.key.decode() if sent.key else None), "the letter tells the original key"
            routing = sent.key if sent.key or author is None else author.encode()
            assert (key or None) == (routing or None), "a dead letter is keyed by the message's key, else the author"
            if sent.expected is R.MISSING_FIELD:
                assert letter.detail.startswith("author: ")
            else:
                assert f"the post's language is {sent.document['lang']!r}; the model reads only en" in letter.detail
