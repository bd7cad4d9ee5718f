"""confluent-kafka client configuration, one place for every process."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, TopicPartition

from streams.broker_auth import client_security
from streams.settings import Settings

log = logging.getLogger(__name__)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "linger.ms": settings.producer_linger_ms,
        # A retried send is written once; with acks=all a write survives the loss of a broker.
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "message.max.bytes": 4 * 1024 * 1024,
        # The Java client's and Faust's partitioner: a person's records from any producer land on
        # the partition that holds the person's table state (librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
    }
    config.update(client_security(settings))
    config.update(overrides)
    return config


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of a keyed record: murmur2, as aiokafka, Java clients and `producer_config` choose it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def consumer_config(settings: Settings, group_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group_id or "antifraud-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(settings.broker_session_timeout_s * 1000),
        "heartbeat.interval.ms": int(settings.broker_heartbeat_interval_s * 1000),
        # What a transactional producer aborted never happened (librdkafka's default, said aloud).
        "isolation.level": "read_committed",
    }
    config.update(client_security(settings))
    config.update(overrides)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, **client_security(settings)}


def end_offsets(bootstrap: str, partitions: list[TopicPartition], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    """Each partition's high watermark, asked of the broker (not a cached answer)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "antifraud-end-offsets", "enable.auto.commit": False})
    try:
        return {(tp.topic, tp.partition): reader.get_watermark_offsets(tp, timeout=timeout_s, cached=False)[1]
                for tp in partitions}
    finally:
        reader.close()
