"""Late listings through the real embedded broker: the simulator's entry lands on the intel
input after the call or transfer it lists, as a partner's late confirmation would."""

import threading
import time
import uuid

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from simulator.traffic import TrafficSimulator
from streams.catalog import get_catalog
from streams.kafka import consumer_config
from streams.topics_admin import apply_topics


class _Stamped(msgspec.Struct):
    event_id: str


def landed(settings, topic_ids: list[str], prefix: str, timeout: float = 30.0) -> dict[str, tuple[str, int]]:
    """event id -> (topic id, broker timestamp ms) of this run's records (event ids start with `prefix`)."""
    catalog = get_catalog()
    specs = [catalog.topic(t) for t in topic_ids]
    consumer = Consumer(consumer_config(settings, group_id=f"sim-late-{uuid.uuid4()}"))
    consumer.assign([TopicPartition(s.name, p, OFFSET_BEGINNING) for s in specs for p in range(s.partitions)])
    ids = {s.name: s.id for s in specs}
    out: dict[str, tuple[str, int]] = {}
    deadline, idle = time.monotonic() + timeout, 0
    try:
        while time.monotonic() < deadline and idle < 10:
            msg = consumer.poll(0.3)
            if msg is None or msg.error():
                idle += msg is None
                continue
            idle = 0
            try:
                event_id = msgspec.json.decode(msg.value(), type=_Stamped).event_id
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue  # malformed traffic, or another test's
            if event_id.startswith(prefix):
                out[event_id] = (ids[msg.topic()], msg.timestamp()[1])
    finally:
        consumer.close()
    return out


@pytest.mark.timeout(120)
def test_a_late_listing_lands_on_the_intel_input_after_its_contact(settings):
    apply_topics(get_catalog(), settings.kafka_bootstrap_servers)
    tag = f"late{uuid.uuid4().hex[:6]}"
    sim = TrafficSimulator(settings, n_persons=300, n_intel=100, seed=5, run_tag=tag, fraud_share=0.3,
                           malformed_share=0.0, late_listing_share=1.0, late_listing_delay_s=(1.0, 1.5),
                           max_gap_s=0.1)
    stop = threading.Event()
    runner = threading.Thread(target=sim.run, args=(stop, 200.0), daemon=True)
    runner.start()
    time.sleep(4.0)
    stop.set()
    runner.join(30)
    assert not runner.is_alive() and not sim.failed

    records = landed(settings, ["in_intel", "in_telecom", "in_bank"], sim.ids.namespace)
    listings = [s.listings[0] for s in sim.scenarios if s.listings]
    published = [x for x in listings if x.offer.value.event_id in records]
    assert published and len(published) == sim.offered[("in_intel", "late_intel")]
    for listing in published:
        topic, listed_ms = records[listing.offer.value.event_id]
        contact_topic, contacted_ms = records[listing.after]
        assert topic == "in_intel" and contact_topic in ("in_telecom", "in_bank")
        assert listed_ms > contacted_ms  # the entry arrives after the contact: only a reach-back finds it
