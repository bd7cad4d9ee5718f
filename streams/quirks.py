"""Broker quirks, detected at start-up by probes rather than assumed.

Tansu 0.6.0 (the embedded broker) answers ListOffsets "latest" with the base offset of
the last batch + 1, ignoring the batch's other records. Faust recovers its tables up to
that offset, so with normal batching a restarted worker would lose table updates (and a
RocksDB store refuses to start). One record per batch makes it exact; only the
changelogs need it (streams.faust_transport), and readers that need another topic's
real end ask streams.kafka.exact_end_offsets. A real Kafka cluster does not have the
quirk and keeps full batching everywhere.
"""

from __future__ import annotations

import logging
import os
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.catalog import get_catalog
from streams.settings import ProducerBatching, Settings

log = logging.getLogger(__name__)

BATCHING_ENV = "ANTIFRAUD_PRODUCER_BATCHING"


def has_last_batch_offset_quirk(bootstrap: str, timeout: float = 10.0) -> bool:
    """Produce a 2-record batch and see whether the high watermark moved by 2."""
    topic = get_catalog().topic("broker_probe").name
    tp = TopicPartition(topic, 0)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        # A lone record first: on a quirky broker an earlier probe's batch skews the
        # watermark, and a one-record batch makes it exact again.
        _send(bootstrap, topic, 1, linger_ms=0, timeout=timeout)
        _, before = reader.get_watermark_offsets(tp, timeout=timeout)
        # A long linger: both records leave in one batch.
        _send(bootstrap, topic, 2, linger_ms=200, timeout=timeout)
        _, after = reader.get_watermark_offsets(tp, timeout=timeout)
    finally:
        reader.close()
    moved = after - before
    log.info("broker probe: a 2-record batch moved the high watermark by %d", moved)
    return moved != 2


def _send(bootstrap: str, topic: str, records: int, linger_ms: int, timeout: float) -> None:
    writer = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "enable.idempotence": False})
    for n in range(records):
        writer.produce(topic, value=b"probe-%d" % n, partition=0)
    if writer.flush(timeout) != 0:
        raise RuntimeError("broker probe: records were not delivered")


def resolve_settings(settings: Settings) -> Settings:
    """Settings with producer batching decided; also exported for child processes."""
    batching = settings.producer_batching
    if batching is ProducerBatching.auto:
        quirk = has_last_batch_offset_quirk(settings.kafka_bootstrap_servers)
        batching = ProducerBatching.single if quirk else ProducerBatching.full
        log.warning(
            "broker %s the ListOffsets last-batch quirk: producer batching = %s",
            "has" if quirk else "does not have",
            batching.value,
        )
    os.environ[BATCHING_ENV] = batching.value
    return settings.model_copy(update={"producer_batching": batching})
