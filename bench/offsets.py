"""Where a consumer group stands and where topics end: the bench's measure of progress.

Progress is read from the broker, never from the process under test: the committed
offsets of the group are what it has processed *and* acknowledged (Faust flushes its
producer before it commits), the end offsets what there is to process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, TopicPartition

from streams.kafka import end_offsets

TP = tuple[str, int]


class Offsets:
    def __init__(self, bootstrap: str, tracked_ends: Iterable[Mapping[TP, int]] = ()) -> None:
        self.bootstrap = bootstrap
        # End offsets known from the bench's own delivery reports (see bench.producer).
        self._tracked = list(tracked_ends)
        self._reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-offsets-{uuid.uuid4()}"})
        self._groups: dict[str, Consumer] = {}
        self._partitions: dict[str, int] = {}

    def track(self, ends: Mapping[TP, int]) -> None:
        self._tracked.append(ends)

    def partitions(self, topics: Iterable[str]) -> list[TP]:
        out = []
        for topic in topics:
            if topic not in self._partitions:
                meta = self._reader.list_topics(topic, timeout=10).topics[topic]
                self._partitions[topic] = len(meta.partitions)
            out += [(topic, p) for p in range(self._partitions[topic])]
        return out

    def ends(self, tps: Iterable[TP]) -> dict[TP, int]:
        found = end_offsets(self.bootstrap, [TopicPartition(t, p) for t, p in tps])
        return {tp: max([high] + [t.get(tp, 0) for t in self._tracked]) for tp, high in found.items()}

    def _group(self, group: str) -> Consumer:
        # A member that never subscribes: reading and setting a group's offsets needs no join.
        if group not in self._groups:
            self._groups[group] = Consumer(
                {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False}
            )
        return self._groups[group]

    def committed(self, group: str, tps: Iterable[TP]) -> dict[TP, int | None]:
        """Next offset the group will read per partition; None where it has never committed."""
        found = self._group(group).committed([TopicPartition(t, p) for t, p in tps], timeout=10)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in found}

    def commit(self, group: str, offsets: Mapping[TP, int]) -> None:
        """Set the group's position (only while none of its members runs)."""
        if offsets:
            self._group(group).commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )

    def close(self) -> None:
        for consumer in self._groups.values():
            consumer.close()
        self._reader.close()
