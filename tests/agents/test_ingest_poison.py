"""Poison input on a running worker: every record ends somewhere, and the partition goes on.

GBK text in a value, invalid bytes in a key, NaN, deep nesting, nulls, all on one partition
between valid records: the bad ones are dead-lettered with their reason, the valid ones
(the one with the broken key too) are normalized, and the worker lives on.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import httpx
import msgspec
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.catalog import get_catalog
from streams.contracts import DeadLetter, DeadLetterReason
from streams.contracts.examples import EXAMPLES
from streams.kafka import producer_config
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()


def invalid_by_source(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(url, timeout=2).text
    return {(s.labels["source"], s.labels["reason"]): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "antifraud_events_invalid_total"}


def test_poison_records_are_dead_lettered_and_the_partition_goes_on(tmp_path):
    own = worker_on_own_servers(tmp_path)
    try:
        settings, worker = own.settings, own.worker
        source = CATALOG.topic("in_telecom")
        now = datetime.now(UTC).isoformat()

        def valid(event_id: str) -> bytes:
            return json.dumps(dict(EXAMPLES["TelecomEvent"], event_id=event_id, event_time=now)).encode()

        gbk = valid("gbk-1").replace(b'"cell_id": "', b'"cell_id": "' + "你好".encode("gbk"), 1)
        records = [
            (None, valid("before-1"), None),
            (b"+86138", gbk, DeadLetterReason.not_utf8),
            (b"\xff\xfe\xc4\xe3", valid("broken-key-1"), None),  # the key is never decoded
            (None, b'{"event_id": NaN}', DeadLetterReason.not_json),
            (None, b"[" * 30_000 + b"]" * 30_000, DeadLetterReason.schema_violation),
            (None, b"null", DeadLetterReason.schema_violation),
            (None, valid("after-1"), None),
        ]
        producer = Producer(producer_config(settings))
        for key, value, _ in records:
            producer.produce(source.name, value, key=key, partition=0)
        assert producer.flush(30) == 0

        normalized = Reader(settings.kafka_bootstrap_servers, CATALOG.topic(source.normalized_to).name)
        accepted = normalized.read_until(lambda m: len(m) >= 3, timeout=90)
        normalized.close()
        ids = {msgspec.json.decode(m.value())["event"]["event_id"] for m in accepted}
        assert ids == {"before-1", "broken-key-1", "after-1"}

        expected = Counter(r.value for _, _, r in records if r is not None)
        dead_reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("dead_letter").name)
        dead = dead_reader.read_until(lambda m: len(m) >= sum(expected.values()), timeout=60)
        dead_reader.close()
        letters = [msgspec.json.decode(m.value(), type=DeadLetter) for m in dead]
        assert Counter(d.reason.value for d in letters) == expected

        assert worker.process.poll() is None, "the worker must survive poison input"
        assert invalid_by_source(worker.metrics_url)[("in_telecom", "not_utf8")] == 1.0
    finally:
        own.stop()
