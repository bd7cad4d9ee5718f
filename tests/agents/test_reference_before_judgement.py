"""Reference data before judgement (issue 17, part 5): a transfer to a mule account listed just before it
always gets its funds warning, and intel that arrives after the transfer still raises it.

Real embedded broker and Valkey, real `antifraud worker` processes. Every round uses its own
resident account and its own mule account, so rounds never help each other through the cache or
the contact index. The mule entry goes to `antifraud.in.intel` and is acknowledged by the broker
before the transfer is produced to `antifraud.in.bank`: by log order the entry comes first.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from confluent_kafka import Producer

from streams.catalog import get_catalog
from streams.contracts import Alert, BankEvent, IntelUpdate, Tier
from streams.contracts.common import Typology
from streams.contracts.reference import IntelKind
from streams.kafka import producer_config
from streams.reference import derived_person_id
from streams.supervisor import spawn_stream_workers
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()
ENCODE = msgspec.json.encode


def mule_entry(tag: str) -> IntelUpdate:
    return IntelUpdate(event_id=f"mule-{tag}", event_time=datetime.now(UTC), kind=IntelKind.mule_account,
                       value=f"acct_mule_{tag}", typology=Typology.investment, confidence=0.9, source="bank_report")


def transfer(tag: str) -> BankEvent:
    return BankEvent(event_id=f"tx-{tag}", event_time=datetime.now(UTC), bank="ABC", kind="transfer_out",
                     account=f"acct_res_{tag}", branch_code="ABC-ZK06-01", channel="mobile_banking",
                     amount=Decimal("4980.00"), counterparty_account=f"acct_mule_{tag}")


def person_of(tag: str) -> str:
    return derived_person_id(f"acct_res_{tag}")  # an unregistered resident without a phone: by the account


class Rounds:
    def __init__(self, settings) -> None:
        self.producer = Producer(producer_config(settings))
        self.alerts = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("alerts").name)
        self.persons: set[str] = set()

    def entry_then_transfer(self, tag: str) -> None:
        self.producer.produce(CATALOG.topic("in_intel").name, ENCODE(mule_entry(tag)))
        assert self.producer.flush(30) == 0  # appended (acknowledged) before the transfer is sent
        self.producer.produce(CATALOG.topic("in_bank").name, ENCODE(transfer(tag)))
        assert self.producer.flush(30) == 0
        self.persons.add(person_of(tag))

    def transfer_then_entry(self, tag: str, gap_s: float) -> None:
        self.producer.produce(CATALOG.topic("in_bank").name, ENCODE(transfer(tag)))
        assert self.producer.flush(30) == 0
        time.sleep(gap_s)
        self.producer.produce(CATALOG.topic("in_intel").name, ENCODE(mule_entry(tag)))
        assert self.producer.flush(30) == 0
        self.persons.add(person_of(tag))

    def funds_warnings(self, timeout: float) -> set[str]:
        """The persons with a funds warning, once every round has one, or what there is at the deadline."""
        warned: set[str] = set()

        def all_warned(messages) -> bool:
            warned.clear()
            for m in messages:
                alert = msgspec.json.decode(m.value(), type=Alert)
                if alert.tier is Tier.funds_warning:
                    warned.add(alert.person_id)
            return self.persons <= warned

        try:
            self.alerts.read_until(all_warned, timeout)
        except AssertionError:
            pass
        return warned & self.persons

    def close(self) -> None:
        self.alerts.close()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Fresh servers and a worker that has only just been started (not waited for)."""
    own = worker_on_own_servers(tmp_path_factory.mktemp("cold"))
    yield own
    own.stop()


def test_cold_start_a_mule_listed_just_before_a_transfer_warns_100_of_100(fresh):
    """100 rounds against one platform started fresh once: the first rounds are produced while the
    worker is still starting (cold start), the rest right after one another (no pause between rounds).
    The platform is not restarted between these rounds; the restart and rebalance rounds follow."""
    rounds = Rounds(fresh.settings)
    try:
        run = uuid.uuid4().hex[:6]
        for n in range(100):
            rounds.entry_then_transfer(f"{run}c{n:03d}")
        warned = rounds.funds_warnings(timeout=90)
        missed = len(rounds.persons - warned)
        assert missed == 0, f"{missed} of {len(rounds.persons)} transfers to a just-listed mule got no funds warning"
    finally:
        rounds.close()


def test_after_a_restart_and_during_a_rebalance_the_listing_still_counts(fresh):
    """The worker is stopped and a new one started (rounds are sent while it starts); then a second
    worker joins the group (a rebalance, rounds sent during it). 20 rounds each."""
    rounds = Rounds(fresh.settings)
    try:
        run = uuid.uuid4().hex[:6]
        fresh.platform.stop_child(fresh.worker)
        fresh.worker = fresh.platform.spawn("worker", "worker")
        for n in range(20):
            rounds.entry_then_transfer(f"{run}r{n:03d}")
        spawn_stream_workers(fresh.platform, 1, prefix="joiner")
        for n in range(20):
            rounds.entry_then_transfer(f"{run}b{n:03d}")
            time.sleep(0.1)  # spread over the rebalance
        warned = rounds.funds_warnings(timeout=90)
        missed = len(rounds.persons - warned)
        assert missed == 0, f"{missed} of {len(rounds.persons)} rounds got no funds warning after restart/rebalance"
    finally:
        rounds.close()


def test_a_mule_listed_after_the_transfer_still_raises_the_funds_warning(fresh):
    """Late intel: the transfer is judged first (no hit), the entry arrives 1-2 s later and re-checks
    the resident's open window: the funds warning comes then."""
    rounds = Rounds(fresh.settings)
    try:
        run = uuid.uuid4().hex[:6]
        for n in range(5):
            rounds.transfer_then_entry(f"{run}l{n:03d}", gap_s=1.0)
        warned = rounds.funds_warnings(timeout=60)
        assert warned == rounds.persons
    finally:
        rounds.close()
