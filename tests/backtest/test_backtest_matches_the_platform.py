"""The backtest judges as the platform does: the same frauds, played into a real worker and replayed
from a history file, reach the same top tier, warning type and funds warnings for every victim.

Integration: a worker on its own embedded broker and Valkey (tests/support.py). The order of
one person's records across the carrier and bank topics is Kafka's on the platform and event
time in the backtest, so what is compared is where each victim ends, not every version on the way.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from confluent_kafka import Producer

from backtest.history import HistoryHeader, HistoryWriter, read_records
from backtest.replay import Replay, VersionRun
from simulator.population import Population
from simulator.reference import Intel, intel_updates, location_updates, registry_updates
from simulator.scenarios import FRAUD_BUILDERS, PREFERRED_VICTIM, EventIds
from streams.catalog import get_catalog
from streams.contracts import Alert, Tier
from streams.contracts.alerts import TIER_RANK
from streams.contracts.common import Typology
from streams.contracts.reference import IntelUpdate
from streams.kafka import producer_config
from streams.routing import get_partners, get_routing
from streams.rules import get_rules
from support import Reader, wait_for_reference_applied, worker_on_own_servers

pytestmark = pytest.mark.integration
CATALOG = get_catalog()
NOW = datetime.now(UTC)
TYPOLOGIES = (Typology.impersonate_police, Typology.fake_customer_service, Typology.order_brushing, Typology.fake_loan)


def outcome(alerts) -> tuple[Tier | None, str | None, int]:
    """Where a person ends: the top risk tier and its warning type, and how many funds warnings."""
    risk = [a for a in alerts if a.tier is not Tier.funds_warning]
    top = max(risk, key=lambda a: TIER_RANK[a.tier], default=None)
    return (top.tier if top else None, top.typology.value if top else None,
            sum(1 for a in alerts if a.tier is Tier.funds_warning))


def test_each_victim_ends_where_the_platform_puts_them(tmp_path):
    population, intel = Population.generate(300, seed=21), Intel(300, seed=21)
    reference = (intel_updates(intel, NOW, "m") + location_updates(population.city, NOW, "m")
                 + list(registry_updates(population, NOW, "m")))
    rng, victims, offers = random.Random(21), [], []
    for n, typology in enumerate(TYPOLOGIES):
        person = next(p for p in population if p.phone_registered and PREFERRED_VICTIM[typology](p)
                      and p not in victims)
        victims.append(person)
        # Ended ten minutes ago: nothing is from the future for ingest, every window still open.
        scenario = FRAUD_BUILDERS[typology](person, intel, NOW - timedelta(hours=3 + n), rng, EventIds(f"m{n}"))
        offers += [o for o in scenario.offers if o.topic_id != "in_case" and o.value.event_time < NOW]

    # The backtest: the same records as a history file.
    history = tmp_path / "week.jsonl.gz"
    writer = HistoryWriter(history)
    for update in reference:
        writer.record("in_intel" if isinstance(update, IntelUpdate) else "in_registry", update)
    for offer in sorted(offers, key=lambda o: o.value.event_time):
        writer.record(offer.topic_id, offer.value)
    writer.close(HistoryHeader(seed=21, residents=len(population), start=NOW - timedelta(hours=8), end=NOW))
    run = VersionRun("shipped", get_rules(), get_routing(), get_partners())
    Replay([run]).run(read_records(history), len(population))
    expected = {p.person_id: outcome([a for a in run.alerts if a.person_id == p.person_id]) for p in victims}
    assert all(tier is not None for tier, _, _ in expected.values()), expected

    # The platform: the same records through a real worker.
    own = worker_on_own_servers(tmp_path / "platform")
    try:
        producer = Producer(producer_config(own.settings))
        for update in reference:
            topic = "in_intel" if isinstance(update, IntelUpdate) else "in_registry"
            producer.produce(CATALOG.topic(topic).name, msgspec.json.encode(update))
        assert producer.flush(60) == 0
        wait_for_reference_applied(own.settings)  # the replay, too, applies the lists before the traffic
        alerts = Reader(own.settings.kafka_bootstrap_servers, CATALOG.topic("alerts").name)
        for offer in offers:
            producer.produce(CATALOG.topic(offer.topic_id).name, msgspec.json.encode(offer.value), key=offer.key)
        assert producer.flush(60) == 0

        def live() -> dict:
            got = [msgspec.json.decode(m.value(), type=Alert) for m in alerts.messages]
            return {p.person_id: outcome([a for a in got if a.person_id == p.person_id]) for p in victims}

        alerts.read_until(lambda _m: live() == expected, timeout=120)
        alerts.read_for(3.0)  # and nothing more comes
        assert live() == expected
        alerts.close()
    finally:
        own.stop()
