"""A stage's outgoing records for one micro-batch, sent as one record batch per partition.

Why not `topic.send()` per record: each send is a Faust call, an aiokafka future and a
trip through its accumulator, and the stages are CPU-bound in Python. Collected per
micro-batch, a partition's records leave at once as one batch, with no linger to wait out.

Keys choose partitions as every platform producer does (murmur2, streams.kafka), and a
partition's records keep the order they were added in. Delivery is at-least-once like
Faust's own sends: Faust flushes the producer before it commits the micro-batch's offsets.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict

import faust

from streams.kafka import key_partition

log = logging.getLogger(__name__)


class Outbox:
    """Records added during a micro-batch; `send()` queues them all at the end of it."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._records: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)

    def add(self, topic: faust.TopicT, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        name = topic.get_topic_name()
        if partition is None:
            partitions = topic.partitions or self._app.conf.topic_partitions
            # An unkeyed record may go anywhere (as aiokafka's partitioner does it).
            partition = key_partition(key, partitions) if key is not None else random.randrange(partitions)
        self._records[(name, partition)].append((key, value))

    def __len__(self) -> int:
        return sum(len(records) for records in self._records.values())

    async def send(self) -> int:
        """Queue every record added since the last send; returns how many."""
        pending, self._records = self._records, defaultdict(list)
        producer = self._app.producer
        sent = 0
        for (topic, partition), records in pending.items():
            for future in await producer.send_record_batches(topic, partition, records):
                future.add_done_callback(self._on_delivered)
            sent += len(records)
        return sent

    def _on_delivered(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is None:
            return
        # aiokafka has retried until its delivery timeout. Faust's flush before a commit
        # does not look at the outcome, so stop the worker before it commits past the loss:
        # a restart redelivers the micro-batch (every stage is idempotent).
        exc = future.exception()
        log.error("a record batch was not delivered (%s): stopping the worker before it commits", exc)
        asyncio.ensure_future(self._app.crash(exc))
