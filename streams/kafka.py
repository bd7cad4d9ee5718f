"""confluent-kafka client configuration, one place for every process.

The broker-specific settings (see streams.quirks) are applied here so that no client
anywhere forgets them.
"""

from __future__ import annotations

from typing import Any

from streams.settings import ProducerBatching, Settings


def _resolved(settings: Settings) -> ProducerBatching:
    if settings.producer_batching is ProducerBatching.auto:
        raise RuntimeError("producer batching is unresolved: call streams.quirks.resolve_settings() first")
    return settings.producer_batching


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
    if _resolved(settings) is ProducerBatching.single:
        # Tansu's ListOffsets sees only the last batch's base offset: one record per batch keeps it exact.
        config["batch.num.messages"] = 1
    config.update(overrides)
    return config


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
