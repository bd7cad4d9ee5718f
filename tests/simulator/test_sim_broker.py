"""The simulator against the real embedded broker: what it counts is exactly what landed."""

import threading
import time
import uuid
from collections import Counter

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from simulator.traffic import TrafficSimulator
from streams.catalog import get_catalog
from streams.contracts import contract
from streams.embedded import start_broker
from streams.kafka import consumer_config
from streams.settings import Settings
from streams.topics_admin import apply_topics


@pytest.fixture
def broker(tmp_path):
    server = start_broker(tmp_path)
    yield server
    server.stop()


def read_inputs(settings: Settings, expected: int, timeout: float = 60.0) -> tuple[Counter, Counter]:
    """(messages, undecodable messages) per input topic id, read from the beginning."""
    catalog = get_catalog()
    inputs = {t.name: t for t in catalog.of_kind("input")}
    consumer = Consumer(consumer_config(settings, group_id=f"sim-test-{uuid.uuid4()}"))
    consumer.assign([TopicPartition(t.name, p, OFFSET_BEGINNING) for t in inputs.values() for p in range(t.partitions)])
    counts, invalid = Counter(), Counter()
    deadline, quiet_until = time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if sum(counts.values()) >= expected:
                    quiet_until = quiet_until or time.monotonic() + 1.5  # anything extra would show up now
                    if time.monotonic() > quiet_until:
                        break
                continue
            assert msg.error() is None, msg.error()
            spec = inputs[msg.topic()]
            counts[spec.id] += 1
            try:
                msgspec.json.decode(msg.value() or b"", type=contract(spec.contract))
            except (msgspec.ValidationError, msgspec.DecodeError):
                invalid[spec.id] += 1
    finally:
        consumer.close()
    return counts, invalid


@pytest.mark.timeout(180)
def test_counters_match_what_landed_on_the_topics(broker):
    apply_topics(get_catalog(), broker.bootstrap)
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
    sim = TrafficSimulator(settings, n_persons=300, n_intel=100, seed=5, run_tag="it",
                           fraud_share=0.15, malformed_share=0.05)
    reference = sim.seed_reference()

    stop = threading.Event()
    runner = threading.Thread(target=sim.run, args=(stop, 200.0), daemon=True)
    runner.start()
    time.sleep(2.0)
    stop.set()
    runner.join(30)
    assert not runner.is_alive()
    assert not sim.failed

    expected = sim.offered_by_topic()
    traffic = sum(expected.values()) - reference
    assert 300 <= traffic <= 500  # ~2 s at 200/s
    counts, invalid = read_inputs(settings, sum(expected.values()))
    assert dict(counts) == expected
    assert dict(invalid) == {t: n for (t, kind), n in sim.offered.items() if kind == "malformed"}
