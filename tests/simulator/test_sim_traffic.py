import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import msgspec
from prometheus_client import REGISTRY

from sim_helpers import FakeProducer
from simulator.traffic import CN_TZ, TrafficSimulator
from streams.catalog import get_catalog
from streams.contracts import contract
from streams.settings import Settings

SETTINGS = Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
INPUTS = {t.name: t for t in get_catalog().of_kind("input")}


def simulator(**kwargs) -> TrafficSimulator:
    kwargs = {"n_persons": 500, "n_intel": 200, "seed": 3, "run_tag": "t", **kwargs}
    return TrafficSimulator(SETTINGS, producer=FakeProducer(), **kwargs)


def drive(sim: TrafficSimulator, n: int) -> None:
    """Offer n messages on a virtual clock (10 ms apart), so fraud replays are released too."""
    base = time.monotonic()
    for i in range(n):
        sim._offer_next(base + i * 0.01)
    sim.producer.flush()


def decoded(message):
    topic, _, payload = message
    return msgspec.json.decode(payload, type=contract(INPUTS[topic].contract))


def test_seed_reference_goes_through_update_topics():
    sim = simulator()
    sent = sim.seed_reference()
    topics = Counter(INPUTS[t].id for t, _, _ in sim.producer.messages)
    assert set(topics) == {"in_registry", "in_intel"} and sum(topics.values()) == sent
    assert sim.offered == {("in_registry", "reference"): topics["in_registry"],
                           ("in_intel", "reference"): topics["in_intel"]}
    for message in sim.producer.messages:
        decoded(message)


def test_mix_of_benign_fraud_and_malformed():
    sim = simulator(fraud_share=0.05, malformed_share=0.02)
    drive(sim, 20_000)
    kinds = Counter(kind for (_, kind) in sim.offered.elements())
    assert sum(kinds.values()) == len(sim.producer.messages) == 20_000
    assert 0.01 < kinds["malformed"] / 20_000 < 0.03
    assert 0.03 < kinds["fraud"] / 20_000 < 0.08
    assert len({s.typology for s in sim.scenarios}) == 6  # every typology shows up

    invalid, late, event_ids = 0, 0, []
    now = datetime.now(CN_TZ)
    for message in sim.producer.messages:
        try:
            event = decoded(message)
        except (msgspec.ValidationError, msgspec.DecodeError):
            invalid += 1
            continue
        event_ids.append(event.event_id)
        assert event.event_time <= now + timedelta(seconds=5)  # never in the future
        late += event.event_time < now - timedelta(minutes=4)
    assert invalid == kinds["malformed"]
    assert len(event_ids) == len(set(event_ids))
    assert 0 < late < 0.02 * 20_000


def test_fraud_events_are_replayed_in_story_order():
    sim = simulator(fraud_share=0.2)
    drive(sim, 5_000)
    sent = {}
    for n, message in enumerate(sim.producer.messages):
        try:
            sent[decoded(message).event_id] = n
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
    complete = [s for s in sim.scenarios if all(i in sent for i in s.event_ids)]
    assert len(complete) > 20
    for scenario in complete:
        positions = [sent[i] for i in scenario.event_ids]
        assert positions == sorted(positions)


def test_same_seed_same_traffic():
    def trace():
        sim = simulator(fraud_share=0.1, malformed_share=0.05)
        drive(sim, 2_000)
        return [(topic, key, without_times(payload)) for topic, key, payload in sim.producer.messages]

    assert trace() == trace()


def without_times(payload: bytes):
    """Everything but the wall-clock stamps, which differ from run to run."""
    try:
        doc = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload[:24]  # garbage or a truncated write: the part before any timestamp
    if isinstance(doc, dict):
        doc.pop("event_time", None)
        doc.pop("occurred_at", None)
    return doc


def test_run_keeps_the_rate_without_busy_waiting():
    sim = simulator()
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    cpu, started = time.process_time(), time.monotonic()
    timer.start()
    sim.run(stop, rate=300)
    wall = time.monotonic() - started
    assert 0.8 * 300 * wall <= len(sim.producer.messages) <= 300 * wall + 2
    assert time.process_time() - cpu < 0.6 * wall


def test_metric_labels_never_carry_personal_data():
    sim = simulator(malformed_share=0.1)
    sim.seed_reference()
    drive(sim, 500)
    samples = [s for m in REGISTRY.collect() if m.name == "antifraud_simulator_offered" for s in m.samples]
    assert samples
    for sample in samples:
        assert sample.labels["topic"] in {t.id for t in INPUTS.values()}
        assert sample.labels["kind"] in {"reference", "benign", "fraud", "malformed", "late_intel"}
