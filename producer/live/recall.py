"""After a crash: the ids of the posts a source sent after its last checkpoint, read back from the raw topic.

A source saves its position and remembered ids every checkpoint interval; a crash (SIGKILL, power loss) loses
what it sent since. Its restart resumes from the saved position, so the network sends those posts again: their ids,
read back from the topic, let the source recognise them instead of sending them twice.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from common.settings import Settings

logger = logging.getLogger(__name__)

READ_TIMEOUT = 30.0


def sent_post_ids(settings: Settings, topic: str, network: str, since: float, until: float) -> list[str]:
    """Ids of ``network``'s posts written to ``topic`` between ``since`` and ``until`` (UNIX seconds, the
    messages' Kafka timestamps), in the order read. Raises ``KafkaException`` or ``TimeoutError`` if Kafka
    cannot tell."""
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"sentistream-recall-{uuid.uuid4().hex}",  # reads only, commits nothing
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=READ_TIMEOUT).topics[topic].partitions
        starts = consumer.offsets_for_times(
            [TopicPartition(topic, p, int(since * 1000)) for p in partitions], timeout=READ_TIMEOUT
        )
        ends = {
            tp.partition: tp.offset
            for tp in consumer.offsets_for_times(
                [TopicPartition(topic, p, int(until * 1000)) for p in partitions], timeout=READ_TIMEOUT
            )
        }
        for p in partitions:  # no message at or after ``until``: read to the partition's end
            if ends[p] < 0:
                ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=READ_TIMEOUT)[1]
        pending = [tp for tp in starts if 0 <= tp.offset < ends[tp.partition]]
        if not pending:
            return []
        consumer.assign(pending)
        waiting = {tp.partition for tp in pending}
        ids: list[str] = []
        deadline = time.monotonic() + READ_TIMEOUT
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(waiting)} not read within {READ_TIMEOUT:.0f} s")
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(message.partition())
                        continue
                    raise KafkaException(error)
                if message.offset() >= ends[message.partition()]:
                    waiting.discard(message.partition())
                    continue
                post_id = _post_id(message.value(), network)
                if post_id is not None:
                    ids.append(post_id)
                if message.offset() + 1 >= ends[message.partition()]:
                    waiting.discard(message.partition())
        return ids
    finally:
        consumer.close()


def _post_id(value: bytes | None, network: str) -> str | None:
    try:
        post = json.loads(value or b"")
    except ValueError:
        return None
    if isinstance(post, dict) and post.get("source") == network and isinstance(post.get("id"), str):
        return post["id"]
    return None
