"""The bench's own producers: they count what they wrote and where it landed.

Delivery reports give the end offset of every partition the bench wrote to, known the
moment the load is flushed, without asking the broker (bench.offsets takes the larger of
the two).
"""

from __future__ import annotations

import threading
from collections import defaultdict

from confluent_kafka import Producer

from streams.kafka import producer_config
from streams.settings import Settings

TopicPartitionKey = tuple[str, int]


def bulk_config(settings: Settings) -> dict:
    """Large batches for the bench's own loads: a pre-load is set-up, not measured, so it
    should cost as little of the run as it can. The platform's processes keep their own
    settings (streams.kafka.producer_config)."""
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
