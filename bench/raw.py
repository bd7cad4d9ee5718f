"""The broker's own speed: confluent-kafka producing and consuming (assign() mode), no Faust.

Two producer profiles: large batches (what the broker can take at best) and the
platform's settings (batched, a few ms of linger: what every platform producer, changelog
writes included, sends with). Reading both topics back shows what a fetch of each costs.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.config import BENCH_PARTITIONS, RAW_BATCHED_TOPIC, RAW_PLATFORM_TOPIC
from bench.producer import BenchProducer, bulk_config
from bench.resources import ResourceMonitor
from streams.kafka import consumer_config, producer_config
from streams.settings import Settings


def produce_rate(
    monitor: ResourceMonitor, config: dict, topic: str, payloads: list[bytes], count: int
) -> tuple[dict, BenchProducer]:
    producer = BenchProducer(config)
    n_payloads = len(payloads)
    monitor.sample_now()  # the CPU baseline of this measurement
    started = time.monotonic()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, payloads[i % n_payloads])
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
    left = producer.flush(120)
    elapsed = time.monotonic() - started
    size = sum(len(payloads[i % n_payloads]) for i in range(min(count, n_payloads))) / max(1, min(count, n_payloads))
    result = _rate(producer.delivered, elapsed, size, failed=producer.failed + left)
    return _with_resources(monitor, result, started), producer


def consume_rate(monitor: ResourceMonitor, settings: Settings, topic: str, count: int) -> dict:
    consumer = Consumer(consumer_config(settings, group_id=f"bench-raw-{uuid.uuid4()}"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(BENCH_PARTITIONS)])
    monitor.sample_now()
    got, size, started = 0, 0, time.monotonic()
    deadline = started + 120
    try:
        while got < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error() is None:
                    got += 1
                    size += len(msg.value() or b"")
    finally:
        consumer.close()
    return _with_resources(monitor, _rate(got, time.monotonic() - started, size / max(1, got)), started)


def _with_resources(monitor: ResourceMonitor, result: dict, started: float) -> dict:
    monitor.sample_now()  # closes the window with a sample of every process
    result["resources"] = monitor.usage(started, time.monotonic(), result["records"])
    return result


def _rate(records: int, elapsed: float, avg_bytes: float, failed: int = 0) -> dict:
    return {
        "records": records,
        "seconds": round(elapsed, 3),
        "records_per_s": round(records / elapsed, 1) if elapsed > 0 else 0.0,
        "mb_per_s": round(records * avg_bytes / elapsed / 1e6, 2) if elapsed > 0 else 0.0,
        "avg_record_bytes": round(avg_bytes, 1),
        "failed": failed,
    }


def raw_references(settings: Settings, payloads: list[bytes], records: int, monitor: ResourceMonitor) -> dict:
    out = {}
    out["produce_batched"], batched = produce_rate(monitor, bulk_config(settings), RAW_BATCHED_TOPIC, payloads, records)
    out["produce_platform"], platform = produce_rate(
        monitor, producer_config(settings), RAW_PLATFORM_TOPIC, payloads, records)
    out["consume_batched"] = consume_rate(monitor, settings, RAW_BATCHED_TOPIC, batched.delivered)
    out["consume_platform"] = consume_rate(monitor, settings, RAW_PLATFORM_TOPIC, platform.delivered)
    return out
