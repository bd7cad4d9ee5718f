"""Late intelligence reaches back (issue 21): an entry listed after residents touched it warns them.

Real embedded broker and Valkey, a real `antifraud worker` process. The residents are unregistered
(their person id comes from their phone or account) and every number and account is this run's
own, so the scenarios never share a cache entry or an index entry. Old contacts are produced now
with their own (earlier) event time, as a carrier's late file would carry them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
from confluent_kafka import Producer

import support
from streams.catalog import get_catalog
from streams.contracts import Alert, BankEvent, IntelUpdate, TelecomEvent, Tier
from streams.contracts.actions import Action, Channel
from streams.contracts.common import Typology
from streams.contracts.reference import IntelKind
from streams.contracts.signals import Carrier, CounterpartType, Direction, TelecomKind
from streams.kafka import producer_config
from streams.reference import derived_person_id
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()
ENCODE = msgspec.json.encode


def ago(**delta) -> datetime:
    """A moment in the past, to the millisecond (the contact index keeps event times in ms)."""
    t = datetime.now(UTC) - timedelta(**delta)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    own = worker_on_own_servers(tmp_path_factory.mktemp("reach-back"))
    yield own
    own.stop()


class Feeds:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.producer = Producer(producer_config(settings))
        self.run = uuid.uuid4().int % 10**6

    def number(self, n: int) -> str:
        return f"+86139{self.run:06d}{n:02d}"

    def send(self, topic_id: str, record) -> None:
        self.producer.produce(CATALOG.topic(topic_id).name, ENCODE(record))
        assert self.producer.flush(30) == 0

    def call(self, resident: str, counterpart: str, at: datetime, duration_s: int) -> TelecomEvent:
        event = TelecomEvent(event_id=f"call-{uuid.uuid4().hex[:10]}", event_time=at, carrier=Carrier.china_mobile,
                             kind=TelecomKind.call, direction=Direction.incoming, subscriber=resident,
                             counterpart=counterpart, counterpart_type=CounterpartType.domestic_mobile, cell_id="ZK01-C0001",
                             answered=True, duration_s=duration_s)
        self.send("in_telecom", event)
        return event

    def transfer(self, account: str, mule: str, at: datetime) -> BankEvent:
        event = BankEvent(event_id=f"tx-{uuid.uuid4().hex[:10]}", event_time=at, bank="ABC", kind="transfer_out",
                          account=account, branch_code="ABC-ZK06-01", channel="mobile_banking",
                          amount=Decimal("4980.00"), counterparty_account=mule)
        self.send("in_bank", event)
        return event

    def list(self, kind: IntelKind, value: str, at: datetime, typology: Typology) -> IntelUpdate:
        entry = IntelUpdate(event_id=f"intel-{uuid.uuid4().hex[:10]}", event_time=at, kind=kind, value=value,
                            typology=typology, confidence=0.9, source="case_report")
        self.send("in_intel", entry)
        return entry


def read_records(settings, topic_id: str, decode_as, keep, count: int, timeout: float = 60.0) -> list:
    return support.read_records(settings.kafka_bootstrap_servers, CATALOG.topic(topic_id).name, decode_as, keep,
                                count, timeout)


def all_records(settings, topic_id: str, decode_as, keep, settle_s: float) -> list:
    """Everything the topic holds that `keep` accepts, after `settle_s` more seconds of reading."""
    reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic(topic_id).name)
    try:
        messages = reader.read_for(settle_s)
    finally:
        reader.close()
    return [r for r in (msgspec.json.decode(m.value(), type=decode_as) for m in messages) if keep(r)]


def enriched(settings, event_ids: set[str]) -> None:
    """Wait until enrich has sent these events on (their contacts are in the index then)."""
    reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("signals_enriched").name)
    try:
        reader.read_until(lambda ms: event_ids <= {msgspec.json.decode(m.value())["event_id"] for m in ms}, 60)
    finally:
        reader.close()


def test_a_number_listed_an_hour_after_a_long_call_warns_that_resident_once_and_not_one_of_80_hours_ago(platform):
    settings, feeds = platform.settings, Feeds(platform.settings)
    fraudster = feeds.number(0)
    recent, old = feeds.number(1), feeds.number(2)
    t0 = ago(hours=1)
    call = feeds.call(recent, fraudster, t0, duration_s=900)
    old_call = feeds.call(old, fraudster, ago(hours=80), duration_s=900)
    enriched(settings, {call.event_id, old_call.event_id})
    person, old_person = derived_person_id(recent), derived_person_id(old)
    mine = {person, old_person}
    assert all_records(settings, "alerts", Alert, lambda a: a.person_id in mine, 1.0) == []  # nothing listed yet

    listed_at = ago()
    listed_wall = time.time()
    feeds.list(IntelKind.fraud_number, fraudster, listed_at, Typology.impersonate_police)
    [alert] = read_records(settings, "alerts", Alert, lambda a: a.person_id == person, 1, timeout=60)
    print(f"retro alert {alert.alert_at.timestamp() - listed_wall:.2f} s after the listing was produced")

    assert alert.tier is Tier.low and alert.typology is Typology.impersonate_police
    assert alert.reach_back is not None
    assert (alert.reach_back.kind, alert.reach_back.source, alert.reach_back.event_id) == (
        IntelKind.fraud_number, "case_report", call.event_id)
    assert alert.reach_back.contacted_at == t0 and alert.reach_back.listed_at == listed_at
    [fired] = [s for s in alert.signals if s.rule == "fraud_number_contact"]
    assert fired.event_ids == [call.event_id]
    assert f"contacted at {t0.isoformat()}" in fired.detail and f"listed at {listed_at.isoformat()}" in fired.detail
    assert fraudster not in ENCODE(alert.signals).decode()

    # The same entry again, and refreshed later: no second alert; nobody of 80 hours ago.
    feeds.list(IntelKind.fraud_number, fraudster, listed_at, Typology.impersonate_police)
    feeds.list(IntelKind.fraud_number, fraudster, listed_at + timedelta(minutes=5), Typology.impersonate_police)
    alerts = all_records(settings, "alerts", Alert, lambda a: a.person_id in mine, settle_s=8.0)
    assert [(a.person_id, a.alert_id, a.version) for a in alerts] == [(person, alert.alert_id, 1)]


def test_a_transfer_to_an_account_listed_30_minutes_later_takes_the_funds_warning_path(platform):
    settings, feeds = platform.settings, Feeds(platform.settings)
    tag = uuid.uuid4().hex[:8]
    account, mule = f"acct_res_{tag}", f"acct_mule_{tag}"
    t0 = ago(minutes=30)
    tx = feeds.transfer(account, mule, t0)
    enriched(settings, {tx.event_id})
    listed_at = ago()
    feeds.list(IntelKind.mule_account, mule, listed_at, Typology.investment)

    person = derived_person_id(account)
    [alert] = read_records(settings, "alerts", Alert,
                           lambda a: a.person_id == person and a.tier is Tier.funds_warning, 1, timeout=60)
    assert alert.alert_id == f"{person}-F-{tx.event_id}" and alert.version == 1  # as if it had been listed first
    assert alert.typology is Typology.investment and alert.reach_back is not None
    assert alert.reach_back.contacted_at == t0 and alert.reach_back.listed_at == listed_at
    [visit] = read_records(settings, f"actions_{Channel.police_visit.value}", Action,
                           lambda a: a.alert_id == alert.alert_id, 1, timeout=60)
    assert visit.tier is Tier.funds_warning and visit.priority == 0 and visit.reason == "initial"


def test_a_call_the_window_no_longer_holds_is_judged_from_the_contact_index(platform):
    """The person's window keeps at most max_history signals: 220 later calls push the long call out
    of it, and the listing still finds the resident through the index's evidence."""
    settings, feeds = platform.settings, Feeds(platform.settings)
    fraudster, resident = feeds.number(10), feeds.number(11)
    t0 = ago(hours=2)
    call = feeds.call(resident, fraudster, t0, duration_s=900)
    later = [feeds.call(resident, f"+86137{feeds.run % 10**5:05d}{n:03d}", t0 + timedelta(seconds=10 + n), duration_s=5)
             for n in range(220)]
    enriched(settings, {call.event_id} | {c.event_id for c in later})
    person = derived_person_id(resident)
    feeds.list(IntelKind.fraud_number, fraudster, ago(), Typology.impersonate_police)
    [alert] = read_records(settings, "alerts", Alert, lambda a: a.person_id == person, 1, timeout=60)
    assert alert.reach_back is not None and alert.reach_back.event_id == call.event_id
    assert [s.event_ids for s in alert.signals if s.rule == "fraud_number_contact"] == [[call.event_id]]
