"""Helpers shared by tests: embedded servers, settings, and an assign()-mode reader.

A plain module (not conftest) so test files can import it by name.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, TopicPartition

from streams.catalog import get_catalog
from streams.embedded import start_broker, start_valkey
from streams.settings import Settings
from streams.topics_admin import apply_topics


@dataclass
class Servers:
    bootstrap: str
    redis_url: str
    run_dir: Path


def make_servers(run_dir: Path):
    broker = start_broker(run_dir)
    valkey = start_valkey(run_dir)
    return broker, valkey, Servers(broker.bootstrap, valkey.url, run_dir)


def make_settings(servers: Servers, **overrides) -> Settings:
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=servers.bootstrap,
        REDIS_URL=servers.redis_url,
        run_dir=servers.run_dir,
        **overrides,
    )
    apply_topics(get_catalog(), servers.bootstrap)
    return settings


class Reader:
    """An assign()-mode reader of whole topics, from the beginning."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}", "enable.auto.commit": False}
        )
        meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        self.messages = []

    def read_until(self, predicate, timeout: float = 60.0) -> list:
        """Poll until predicate(all messages so far) holds; fails the test at the deadline."""
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: condition not met in {timeout:.0f} s; have {len(self.messages)}")
            msg = self.consumer.poll(0.2)
            if msg is not None and not msg.error():
                self.messages.append(msg)
        return self.messages

    def read_for(self, seconds: float) -> list:
        """Everything that arrives within `seconds` (used to prove that nothing more comes)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is not None and not msg.error():
                self.messages.append(msg)
        return self.messages

    def close(self) -> None:
        self.consumer.close()


def read_records(bootstrap: str, topic: str, decode_as, keep, count: int, timeout: float = 60.0) -> list:
    """The first `count` records of the topic, decoded as `decode_as`, that `keep` accepts."""
    reader = Reader(bootstrap, topic)
    found: list = []

    def enough(messages) -> bool:
        found[:] = [r for r in (msgspec.json.decode(m.value(), type=decode_as) for m in messages) if keep(r)]
        return len(found) >= count

    try:
        reader.read_until(enough, timeout)
    finally:
        reader.close()
    return found


def record_batches(bootstrap: str, topic: str, partition: int) -> list[list[tuple[bytes | None, bytes]]]:
    """A partition as the broker stores it: its record batches, each a list of (key, value).

    Consumers hide batches; this fetches with aiokafka's protocol classes and walks the
    batches of each response.
    """
    return asyncio.run(_record_batches(bootstrap, topic, partition))


async def _record_batches(bootstrap: str, topic: str, partition: int) -> list[list[tuple[bytes | None, bytes]]]:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        node = client.cluster.leader_for_partition(AioTopicPartition(topic, partition))
        batches, offset = [], 0
        while True:
            response = await client.send(node, FetchRequest(100, 1, 8 << 20, 0, [(topic, [(partition, offset, 8 << 20)])]))
            answer = response.topics[0][1][0]  # (partition, error, high watermark, ..., records) in every version
            high, records = answer[2], MemoryRecords(answer[-1])
            start = offset
            while (batch := records.next_batch()) is not None:
                new = [r for r in batch if r.offset >= offset]
                if new:
                    batches.append([(r.key, r.value) for r in new])
                    offset = new[-1].offset + 1
            if offset >= high or offset == start:
                return batches
    finally:
        await client.close()


@dataclass
class OwnWorker:
    """A real `antifraud worker` on a broker and Valkey of its own, so a test module's counts are exact."""

    settings: Settings
    worker: object
    platform: object
    servers: tuple

    def stop(self) -> None:
        self.platform.stop()
        for server in self.servers:
            server.stop()


def worker_on_own_servers(run_dir: Path, **worker_env: str) -> OwnWorker:
    from streams.supervisor import Platform

    broker, valkey, servers = make_servers(run_dir)
    settings = make_settings(servers)
    platform = Platform(settings)
    worker = platform.spawn("worker", "worker", **worker_env)
    return OwnWorker(settings, worker, platform, (broker, valkey))


def wait_for_reference_applied(settings: Settings, timeout: float = 120.0) -> None:
    """Until the worker group has committed every registry and intel update, raw and normalized.

    A test that sends a bulk reference load and then the traffic it judges waits here: the
    reference barrier does not wait for a partition more than `reference_barrier_max_backlog`
    records behind (a bulk list, docs/enrichment.md), so without it the traffic may be judged
    before the registry is applied.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from streams.catalog import get_catalog

    catalog = get_catalog()
    specs = [catalog.topic(t) for t in ("in_registry", "in_intel", "norm_registry", "norm_intel")]
    tps = [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]
    reader = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": catalog.app_id,
                       "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ends = {(tp.topic, tp.partition): reader.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
                committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed(tps, timeout=10)}
            except KafkaException:  # a fresh broker's partitions still electing leaders: ask again
                ends, committed = {(tp.topic, tp.partition): 1 for tp in tps}, {}
            behind = {tp: end for tp, end in ends.items() if end > 0 and committed.get(tp, -1) < end}
            if not behind:
                return
            assert time.monotonic() < deadline, f"reference not applied in {timeout:.0f} s: {sorted(behind)[:4]}"
            time.sleep(0.5)
    finally:
        reader.close()
