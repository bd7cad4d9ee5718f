"""confluent-kafka client configuration, one place for every process.

The broker-specific settings (see streams.quirks) are applied here so that no client
anywhere forgets them. These clients never write a changelog, the only kind of topic
whose end offsets anybody trusts, so the ListOffsets quirk leaves their batching alone
(streams.faust_transport); readers that need a topic's real end use `exact_end_offsets`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.settings import Settings

log = logging.getLogger(__name__)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "linger.ms": settings.producer_linger_ms,
        "enable.idempotence": False,  # Tansu has no idempotent producer; side effects are idempotent instead
        "acks": "all",
        "message.max.bytes": 4 * 1024 * 1024,
        # The Java client's and Faust's partitioner: a person's records from any producer land on
        # the partition that holds the person's table state (librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
    }
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
        # Tansu makes a group join wait half the session timeout: keep it short.
        "session.timeout.ms": int(settings.broker_session_timeout_s * 1000),
        "heartbeat.interval.ms": int(settings.broker_heartbeat_interval_s * 1000),
        # Tansu does not wake a parked fetch when data arrives: bound the wait.
        "fetch.wait.max.ms": settings.consumer_fetch_wait_ms,
    }
    config.update(overrides)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_bootstrap_servers}


_UNANSWERED: set[tuple[str, int]] = set()  # partitions exact_end_offsets has warned about


def exact_end_offsets(bootstrap: str, partitions: list[TopicPartition], timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
    """Each partition's end offset, exact even on a broker with the ListOffsets quirk.

    Tansu answers ListOffsets "latest" with the last batch's base offset + 1, so after a
    batched write it is short. A fetch's own high watermark is exact: fetch once from the
    listed end and take the watermark the answer carries (on Kafka they are the same).
    """
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "antifraud-end-offsets",
                       "enable.auto.commit": False, "enable.partition.eof": True,
                       # Tansu parks an empty fetch for the whole wait: an EOF costs at least this.
                       "fetch.wait.max.ms": 10})
    try:
        ends: dict[tuple[str, int], int] = {}
        start = []
        for tp in partitions:
            _, high = reader.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            ends[(tp.topic, tp.partition)] = high
            if high > 0:  # a quirky 0 is not possible: a batch at base 0 lists 1
                start.append(TopicPartition(tp.topic, tp.partition, high))
        open_ = {(tp.topic, tp.partition) for tp in start}
        reader.assign(start)
        deadline = time.monotonic() + timeout_s
        while open_ and time.monotonic() < deadline:
            answered = set()
            for message in reader.consume(1000, timeout=0.5):
                error = message.error()
                if error is None or error.code() == KafkaError._PARTITION_EOF:
                    answered.add((message.topic(), message.partition()))
            for key in answered & open_:
                # The watermark of the last fetch answer: exact, even while the partition grows.
                _, fetched_high = reader.get_watermark_offsets(TopicPartition(*key), cached=True)
                if fetched_high >= 0:
                    ends[key] = max(ends[key], fetched_high)
                    open_.discard(key)
        if open_:  # seen on large partitions (Tansu answers fetches on them slowly): the listed end is all we have
            # Callers poll: said once per partition, not every poll.
            new = sorted(open_ - _UNANSWERED)
            _UNANSWERED.update(open_)
            (log.warning if new else log.debug)(
                "exact end offsets: no fetch answer in %.0f s from %s; using the listed ends", timeout_s, new or sorted(open_))
        return ends
    finally:
        reader.close()
