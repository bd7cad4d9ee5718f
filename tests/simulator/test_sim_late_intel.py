"""Late intelligence in the simulator: a fraud's number or mule account is listed only after the
resident touched it, so `make run` shows retro alerts (回溯预警). The value is one no list
held; the entry reaches in_intel after the contact, by wall-clock seconds."""

import random
import time
from collections import Counter

import msgspec
import pytest

from sim_helpers import NOW, FakeProducer
from simulator import late_intel
from simulator import scenarios as sc
from simulator.reference import FRAUD_TYPOLOGIES
from simulator.traffic import TrafficSimulator
from streams.catalog import get_catalog
from streams.contracts import AppReport, BankEvent, IntelUpdate, TelecomEvent, contract
from streams.contracts.reference import IntelKind
from streams.contracts.signals import BankKind
from streams.settings import Settings

INPUTS = {t.name: t for t in get_catalog().of_kind("input")}


def late(typology, population, intel, n=30, seed=9):
    rng, ids = random.Random(seed), sc.EventIds("late")
    return [late_intel.listed_late(sc.FRAUD_BUILDERS[typology](population.random_person(rng), intel, NOW, rng, ids),
                                   intel, rng, ids) for _ in range(n)]


def touching(scenario, value):
    return [o.value for o in scenario.offers
            if value in (getattr(o.value, "counterpart", None), getattr(o.value, "counterparty_account", None))]


@pytest.mark.parametrize("typology", FRAUD_TYPOLOGIES)
def test_an_unlisted_counterpart_is_listed_after_its_first_contact(typology, population, intel):
    kinds = Counter()
    for scenario in late(typology, population, intel):
        if not scenario.listings:
            continue
        [listing] = scenario.listings
        update = listing.offer.value
        assert isinstance(update, IntelUpdate) and listing.offer.topic_id == "in_intel"
        assert listing.offer.key == f"{update.kind.value}:{update.value}".encode()
        assert update.typology is typology and 0.7 <= update.confidence <= 1.0
        assert late_intel.DELAY_S[0] <= listing.delay_s <= late_intel.DELAY_S[1]
        kinds[update.kind] += 1
        # A value no list holds (not even as a range): only reaching back can find who touched it.
        if update.kind is IntelKind.fraud_number:
            assert not intel.is_listed_number(update.value)
            contacts = touching(scenario, update.value)
            assert contacts and all(isinstance(c, TelecomEvent | AppReport) for c in contacts)
        else:
            assert update.kind is IntelKind.mule_account and not intel.is_listed_account(update.value)
            contacts = [c for c in touching(scenario, update.value) if c.kind is BankKind.transfer_out]
            assert contacts and all(isinstance(c, BankEvent) for c in contacts)
            assert scenario.expect_funds_warning  # as if it had been listed first
        assert listing.after == contacts[0].event_id
        assert update.event_time > contacts[0].event_time
        for offer in scenario.offers:  # the swapped story still validates
            decoded = msgspec.json.decode(msgspec.json.encode(offer.value),
                                          type=contract(get_catalog().topic(offer.topic_id).contract))
            assert decoded == offer.value
    assert sum(kinds.values()) >= 20  # nearly every story has a listed number or mule to swap


def test_both_numbers_and_mule_accounts_are_listed_late(population, intel):
    kinds = Counter(s.listings[0].offer.value.kind for t in FRAUD_TYPOLOGIES for s in late(t, population, intel)
                    if s.listings)
    assert kinds[IntelKind.fraud_number] > 20 and kinds[IntelKind.mule_account] > 20


def drive(sim: TrafficSimulator, n: int, base: float | None = None, step_s: float = 0.01) -> float:
    """Offer n messages on a virtual clock (10 ms apart) from `base`; returns where the clock stopped."""
    base = time.monotonic() if base is None else base
    for i in range(n):
        sim._offer_next(base + i * step_s)
    sim.producer.flush()
    return base + n * step_s


def test_the_traffic_publishes_the_entry_after_the_contact():
    sim = TrafficSimulator(Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), producer=FakeProducer(), n_persons=500,
                           n_intel=200, seed=3, run_tag="t", fraud_share=0.2, late_listing_share=1.0)
    clock = drive(sim, 20_000)  # 200 s of virtual clock
    sim.fraud_odds = 0.0  # then no new story, and 200 s more: every listing (at most 180 s late) comes due
    drive(sim, 20_000, clock)
    sent = {}
    for n, (topic, _key, payload) in enumerate(sim.producer.messages):
        try:
            sent[msgspec.json.decode(payload, type=contract(INPUTS[topic].contract)).event_id] = (n, topic)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
    listings = [s.listings[0] for s in sim.scenarios if s.listings]
    assert len(listings) > 20
    published = [x for x in listings if x.offer.value.event_id in sent]
    assert published == listings
    for listing in published:
        position, topic = sent[listing.offer.value.event_id]
        assert INPUTS[topic].id == "in_intel"
        contact_position, _ = sent[listing.after]
        assert position > contact_position
        # Not before its delay has passed on the simulator's clock (one message per 10 ms step here), whatever
        # the queue of due story events held back.
        assert position * 0.01 >= listing.delay_s
    kinds = Counter(kind for (_, kind) in sim.offered.elements())
    assert kinds["late_intel"] == len(published)
    assert sim.offered[("in_intel", "late_intel")] == len(published)


def test_no_late_listing_unless_asked_for():
    sim = TrafficSimulator(Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), producer=FakeProducer(), n_persons=500,
                           n_intel=200, seed=3, run_tag="t", fraud_share=0.2)
    drive(sim, 5_000)
    assert not any(s.listings for s in sim.scenarios)
    assert not any(INPUTS[topic].id == "in_intel" for topic, _, _ in sim.producer.messages)
    assert Settings().simulator_late_listing_share > 0  # `antifraud up` asks for it
