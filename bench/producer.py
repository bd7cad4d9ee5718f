"""The bench's own producers: they know exactly where every record they wrote landed.

Tansu answers ListOffsets "latest" with the base offset of the last batch + 1, so after a
batched bulk load its high watermarks are short. The bench does not trust them for its
own writes: delivery reports give the true end offset of every partition it wrote to.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from confluent_kafka import Producer

from streams.kafka import producer_config
from streams.settings import Settings

TopicPartitionKey = tuple[str, int]


def bulk_config(settings: Settings) -> dict:
    """Large batches for the bench's own loads (measured: ~40x the one-record-batch rate on Tansu).

    Safe on Tansu: the quirk only skews ListOffsets, which Faust uses to recover tables
    from changelogs, and the bench never writes a changelog. The platform's own processes
    keep the probed one-record batches.
    """
    return producer_config(
        settings,
        **{
            "batch.num.messages": 10_000,
            "linger.ms": 20,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        },
    )


class BenchProducer:
    """A confluent-kafka Producer that counts, tracks end offsets and can stop at a limit.

    Quacks like the Producer that simulator.traffic.TrafficSimulator takes, so the bench
    feeds the platform through the simulator's own generators.
    """

    def __init__(
        self,
        config: dict,
        *,
        limit: int | None = None,
        stop: threading.Event | None = None,
        topic_override: str | None = None,
    ) -> None:
        self._producer = Producer(config)
        self.limit, self.stop, self.topic_override = limit, stop, topic_override
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.ends: dict[TopicPartitionKey, int] = defaultdict(int)

    def produce(self, topic, value=None, key=None, on_delivery=None, **kwargs) -> None:
        # The simulator's own delivery callback (its counters) is not needed: ours counts.
        if self.limit is not None and self.produced >= self.limit:
            if self.stop is not None:
                self.stop.set()
            return  # over the limit: dropped here, so a run offers exactly `limit` messages
        self._producer.produce(self.topic_override or topic, value, key, on_delivery=self._delivered, **kwargs)
        self.produced += 1  # after produce(): a BufferError must not count

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.failed += 1
            return
        self.delivered += 1
        tp = (msg.topic(), msg.partition())
        if msg.offset() + 1 > self.ends[tp]:
            self.ends[tp] = msg.offset() + 1

    def poll(self, timeout: float = 0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 60.0) -> int:
        return self._producer.flush(timeout)
