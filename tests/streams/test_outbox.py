"""streams.outbox on the real embedded broker: a micro-batch's records leave as one record batch per partition."""

from __future__ import annotations

import asyncio
import uuid

import faust

from streams.faust_transport import broker_urls
from streams.kafka import key_partition
from streams.outbox import Outbox
from support import record_batches


def send_through_outbox(bootstrap: str, topic: str, partitions: int, records, max_batch_bytes: int = 512 * 1024,
                        micro_batches: int = 1) -> int:
    """Add `records` ((key, value) pairs) to an Outbox of a Faust producer on our transport, in
    `micro_batches` sends of equal parts; then flush."""

    async def run() -> int:
        # Made inside the running loop: Faust services bind to the loop current at creation.
        app = faust.App(f"test-outbox-{uuid.uuid4().hex[:8]}", broker=broker_urls(bootstrap),
                        producer_max_batch_size=max_batch_bytes, web_enabled=False, autodiscover=False)
        sink = app.topic(topic, partitions=partitions, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")
        await app.producer.start()
        try:
            out, sent, part = Outbox(app), 0, -(-len(records) // micro_batches)
            for start in range(0, len(records), part):
                for key, value in records[start:start + part]:
                    out.add(sink, key, value)
                assert len(out) == len(records[start:start + part])
                sent += await out.send()
                assert len(out) == 0, "a send empties the outbox"
            await app.producer.flush()
            return sent
        finally:
            await app.producer.stop()

    return asyncio.run(run())


def test_a_micro_batch_leaves_as_one_record_batch_per_partition(servers, topic_factory):
    topic = topic_factory(partitions=4)
    records = [(b"person-%d" % (n % 37), b"event %d" % n) for n in range(400)]

    assert send_through_outbox(servers.bootstrap, topic, 4, records) == 400

    for partition in range(4):
        batches = record_batches(servers.bootstrap, topic, partition)
        expected = [r for r in records if key_partition(r[0], 4) == partition]
        assert expected, "37 keys reach every one of 4 partitions"
        assert len(batches) == 1, f"partition {partition}: {[len(b) for b in batches]} records per batch"
        assert batches[0] == expected, "the keys' partitions are murmur2's, in the order added"


def test_micro_batches_each_leave_as_their_own_batch(servers, topic_factory):
    topic = topic_factory(partitions=1)
    records = [(b"k", b"event %d" % n) for n in range(90)]

    send_through_outbox(servers.bootstrap, topic, 1, records, micro_batches=3)

    assert [len(b) for b in record_batches(servers.bootstrap, topic, 0)] == [30, 30, 30]


def test_a_partition_larger_than_the_batch_limit_takes_several_batches(servers, topic_factory):
    topic = topic_factory(partitions=1)
    records = [(b"k", b"%04d" % n + b"x" * 1000) for n in range(100)]  # ~100 KB

    send_through_outbox(servers.bootstrap, topic, 1, records, max_batch_bytes=16 * 1024)

    batches = record_batches(servers.bootstrap, topic, 0)
    assert 6 <= len(batches) <= 8, [len(b) for b in batches]
    assert [r for b in batches for r in b] == records
