"""Enrich: signals come out resolved to a person and jurisdiction, with counterpart intelligence.

One real `antifraud worker` (ingest, reference loader, enrich) on its own embedded broker
and Valkey. Reference data and most signals enter through the input topics, as partners
send them; the outage test writes normalized records so that only enrich can hold them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import msgspec
import pytest
import redis
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.catalog import get_catalog
from streams.contracts import (
    AppReport,
    BankEvent,
    DeadLetter,
    EnrichedSignal,
    Ingested,
    IntelUpdate,
    RegistryUpdate,
    TelecomEvent,
)
from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import AgeBand, IdentifierKind, IntelKind
from streams.embedded import start_valkey
from streams.kafka import producer_config
from streams.reference import derived_person_id, intel_key, registry_key
from streams.supervisor import Platform
from support import Reader, make_servers, make_settings

CATALOG = get_catalog()
INPUT_OF = {TelecomEvent: "in_telecom", BankEvent: "in_bank", AppReport: "in_app_report",
            IntelUpdate: "in_intel", RegistryUpdate: "in_registry"}
NORM_OF = {TelecomEvent: "norm_telecom", BankEvent: "norm_bank", AppReport: "norm_app_report"}

# The synthetic cast. A is registered and elderly, B a registered student, C is in no registry.
A_PHONE, A_ACCOUNT = "+8613800001001", "acct_a0000001"
B_PHONE = "+8613800001002"
C_PHONE, C_ACCOUNT, C_CELL, C_BRANCH = "+8613800001003", "acct_c0000003", "ZK05-C0012", "ABC-ZK06-01"
FRAUD_NUMBER, RANGE, IN_RANGE = "+8617000001234", "+8617188", "+8617188004321"
MULE, PHISH_URL, PHISH_DOMAIN = "acct_mule_9001", "https://licai-77aa.top.test/login", "fanli-88bb.xyz.test"
APK = "3f" * 32


def now() -> datetime:
    return datetime.now(UTC)


def reference_updates() -> list:
    t = now()
    a = dict(person_id="P000001001", county="ZK02", station="ZK02-PS03", grid="ZK02-PS03-G07",
             age_band=AgeBand.age_70_plus)
    b = dict(person_id="P000001002", county="ZK01", station="ZK01-PS01", age_band=AgeBand.age_18_25, student=True)
    reg = IdentifierKind
    intel = dict(confidence=0.9, source="mps_list")
    return [
        RegistryUpdate(event_id="seed-a-p", event_time=t, identifier_kind=reg.phone, identifier=A_PHONE, **a),
        RegistryUpdate(event_id="seed-a-a", event_time=t, identifier_kind=reg.account, identifier=A_ACCOUNT, **a),
        RegistryUpdate(event_id="seed-b-p", event_time=t, identifier_kind=reg.phone, identifier=B_PHONE, **b),
        RegistryUpdate(event_id="seed-cell", event_time=t, identifier_kind=reg.cell, identifier=C_CELL,
                       county="ZK05", station="ZK05-PS04"),
        RegistryUpdate(event_id="seed-branch", event_time=t, identifier_kind=reg.branch, identifier=C_BRANCH,
                       county="ZK06", station="ZK06-PS01"),
        IntelUpdate(event_id="seed-i-n", event_time=t, kind=IntelKind.fraud_number, value=FRAUD_NUMBER,
                    typology=Typology.impersonate_police, **intel),
        IntelUpdate(event_id="seed-i-r", event_time=t, kind=IntelKind.number_range, value=RANGE,
                    typology=Typology.fake_loan, **intel),
        IntelUpdate(event_id="seed-i-m", event_time=t, kind=IntelKind.mule_account, value=MULE,
                    typology=Typology.investment, **intel),
        IntelUpdate(event_id="seed-i-u", event_time=t, kind=IntelKind.phishing_url, value=PHISH_URL,
                    typology=Typology.order_brushing, **intel),
        IntelUpdate(event_id="seed-i-d", event_time=t, kind=IntelKind.phishing_domain, value=PHISH_DOMAIN,
                    typology=Typology.romance, **intel),
        IntelUpdate(event_id="seed-i-a", event_time=t, kind=IntelKind.fraud_apk, value=APK,
                    typology=Typology.fake_customer_service, **intel),
    ]


def telecom(event_id: str, subscriber: str = A_PHONE, counterpart: str = "+8613900009999", **fields) -> TelecomEvent:
    return TelecomEvent(**{"event_id": event_id, "event_time": now(), "carrier": "china_mobile", "kind": "sms",
                           "direction": "incoming", "subscriber": subscriber, "counterpart": counterpart,
                           "counterpart_type": "domestic_mobile", "cell_id": C_CELL, **fields})


def bank(event_id: str, account: str = A_ACCOUNT, **fields) -> BankEvent:
    return BankEvent(event_id=event_id, event_time=now(), bank="ABC", kind="transfer_out", account=account,
                     branch_code=C_BRANCH, channel="mobile_banking", amount=Decimal("4980.00"),
                     **{"counterparty_account": "acct_friend_01", **fields})


def app_report(event_id: str, reporter: str = B_PHONE, **fields) -> AppReport:
    return AppReport(event_id=event_id, event_time=now(), source="antifraud_app",
                     kind=fields.pop("kind", "suspicious_call"), reporter_phone=reporter, **fields)


# ----------------------------------------------------------------------------------- unit
def test_what_each_signal_looks_up():
    from agents.enrich import lookup_request

    call = lookup_request(telecom("u-1", counterpart=FRAUD_NUMBER, sms_urls=[PHISH_URL]))
    assert call.residents == ((IdentifierKind.phone, A_PHONE),) and call.location == (IdentifierKind.cell, C_CELL)
    assert [(p.matched_on, p.kind) for p in call.probes] == [
        ("counterpart", IntelKind.fraud_number), ("counterpart", IntelKind.number_range),
        ("sms_url", IntelKind.phishing_url), ("sms_url", IntelKind.phishing_domain)]
    transfer = lookup_request(bank("u-2", holder_phone=B_PHONE, counterparty_account=MULE))
    assert transfer.residents == ((IdentifierKind.account, A_ACCOUNT), (IdentifierKind.phone, B_PHONE))
    assert transfer.location == (IdentifierKind.branch, C_BRANCH)
    assert [(p.matched_on, p.kind) for p in transfer.probes] == [("counterparty_account", IntelKind.mule_account)]
    report = lookup_request(app_report("u-3", kind="fraud_app_installed", apk_sha256=APK))
    assert report.location is None and [p.kind for p in report.probes] == [IntelKind.fraud_apk]


# ------------------------------------------------------------------------------- fixtures
class Stack:
    def __init__(self, run_dir):
        self.broker, self.valkey, servers = make_servers(run_dir)
        self.run_dir = run_dir
        self.settings = make_settings(servers)
        self.platform = Platform(self.settings)
        self.worker = self.platform.spawn("worker", "worker")
        self.producer = Producer(producer_config(self.settings))

    def offer(self, *messages, normalized: bool = False) -> None:
        for m in messages:
            if normalized:
                envelope = Ingested(event=m, ingested_at=now(), source_topic="test", source_partition=0, source_offset=0)
                topic, value = NORM_OF[type(m)], msgspec.json.encode(envelope)
            else:
                topic, value = INPUT_OF[type(m)], msgspec.json.encode(m)
            self.producer.produce(CATALOG.topic(topic).name, value)
        assert self.producer.flush(30) == 0

    def valkey_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def signals(self, event_ids, timeout: float = 60.0) -> dict[str, tuple[bytes, EnrichedSignal]]:
        """The enriched signal of each of these events (and its record key), once all have come out."""
        wanted = set(event_ids)
        reader = Reader(self.settings.kafka_bootstrap_servers, CATALOG.topic("signals_enriched").name)
        try:
            found: dict[str, tuple[bytes, EnrichedSignal]] = {}

            def all_found(messages) -> bool:
                for m in messages[len(seen):]:
                    signal = msgspec.json.decode(m.value(), type=EnrichedSignal)
                    seen.append(signal.event_id)
                    if signal.event_id in wanted:
                        found[signal.event_id] = (m.key(), signal)
                return wanted <= set(found)

            seen: list[str] = []
            reader.read_until(all_found, timeout=timeout)
            return found
        finally:
            reader.close()

    def stop(self) -> None:
        self.producer = None  # librdkafka's open connection would hold up the broker's shutdown by seconds
        self.platform.stop()
        self.broker.stop()
        self.valkey.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("enrich"))
    stack.offer(*reference_updates())
    valkey = stack.valkey_client()
    expected = [registry_key(IdentifierKind.branch, C_BRANCH), intel_key(IntelKind.fraud_apk, APK),
                registry_key(IdentifierKind.phone, B_PHONE), intel_key(IntelKind.phishing_domain, PHISH_DOMAIN)]
    deadline = time.monotonic() + 60
    while valkey.exists(*expected) < len(expected):
        assert time.monotonic() < deadline, "reference data was not loaded"
        time.sleep(0.1)
    yield stack
    stack.stop()


def metric(stack: Stack, name: str, **labels) -> float:
    text = httpx.get(stack.worker.metrics_url, timeout=2).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# ---------------------------------------------------------------------------------- tests
def test_registered_residents_carry_their_person_jurisdiction_and_vulnerability(stack):
    stack.offer(telecom("reg-t"), bank("reg-b"), app_report("reg-app"),
                bank("reg-b-phone", account="acct_unknown_77", holder_phone=B_PHONE))
    out = stack.signals(["reg-t", "reg-b", "reg-app", "reg-b-phone"])

    key, signal = out["reg-t"]
    assert key == b"P000001001" and signal.person_id == "P000001001" and signal.identity_resolved
    assert (signal.jurisdiction.county, signal.jurisdiction.station, signal.jurisdiction.grid) == \
        ("ZK02", "ZK02-PS03", "ZK02-PS03-G07")
    assert signal.vulnerability.elderly and signal.vulnerability.age_band is AgeBand.age_70_plus
    assert signal.phone == A_PHONE and signal.telecom.event_id == "reg-t" and signal.bank is None and signal.intel == []
    _, by_account = out["reg-b"]
    assert by_account.person_id == "P000001001" and by_account.bank.amount == Decimal("4980.00")
    assert by_account.phone is None  # the bank gave no holder phone
    _, student = out["reg-app"]
    assert student.person_id == "P000001002" and student.vulnerability.student and not student.vulnerability.elderly
    assert student.jurisdiction.grid == "unknown" and student.app.kind.value == "suspicious_call"
    _, by_holder = out["reg-b-phone"]  # an unknown account, but the holder's phone is registered
    assert by_holder.person_id == "P000001002" and by_holder.identity_resolved and by_holder.phone == B_PHONE


def test_unregistered_residents_are_located_by_cell_or_branch(stack):
    stack.offer(telecom("unreg-t", subscriber=C_PHONE), bank("unreg-b", account=C_ACCOUNT, holder_phone=C_PHONE),
                bank("unreg-b2", account=C_ACCOUNT), app_report("unreg-app", reporter=C_PHONE))
    out = stack.signals(["unreg-t", "unreg-b", "unreg-b2", "unreg-app"])

    key, call = out["unreg-t"]
    assert not call.identity_resolved and call.person_id == derived_person_id(C_PHONE) and key == call.person_id.encode()
    assert (call.jurisdiction.county, call.jurisdiction.station, call.jurisdiction.grid) == ("ZK05", "ZK05-PS04", "unknown")
    assert call.vulnerability.age_band is AgeBand.unknown and call.phone == C_PHONE
    _, transfer = out["unreg-b"]
    assert transfer.person_id == call.person_id  # same resident, same derived id: correlation can join them
    assert (transfer.jurisdiction.county, transfer.jurisdiction.station) == ("ZK06", "ZK06-PS01")
    assert out["unreg-b2"][1].person_id == derived_person_id(C_ACCOUNT)  # no phone at all: from the account
    _, report = out["unreg-app"]
    assert report.person_id == call.person_id
    assert (report.jurisdiction.county, report.jurisdiction.station) == ("unknown", "unknown")


def test_intel_hits_for_every_list(stack):
    stack.offer(
        telecom("hit-t", counterpart=FRAUD_NUMBER, sms_urls=[PHISH_URL, f"pay.{PHISH_DOMAIN}/h5?id=1"]),
        telecom("hit-range", kind="call", counterpart=IN_RANGE, answered=True, duration_s=600),
        bank("hit-b", counterparty_account=MULE),
        app_report("hit-app", kind="fraud_app_installed", counterpart=IN_RANGE, url=f"https://{PHISH_DOMAIN}/x",
                   apk_sha256=APK.upper()),
    )
    out = stack.signals(["hit-t", "hit-range", "hit-b", "hit-app"])

    def hits(event_id):
        return {(h.kind, h.matched_on, h.typology) for h in out[event_id][1].intel}

    assert hits("hit-t") == {(IntelKind.fraud_number, "counterpart", Typology.impersonate_police),
                             (IntelKind.phishing_url, "sms_url", Typology.order_brushing),
                             (IntelKind.phishing_domain, "sms_url", Typology.romance)}
    assert hits("hit-range") == {(IntelKind.number_range, "counterpart", Typology.fake_loan)}
    assert hits("hit-b") == {(IntelKind.mule_account, "counterparty_account", Typology.investment)}
    assert hits("hit-app") == {(IntelKind.number_range, "counterpart", Typology.fake_loan),
                               (IntelKind.phishing_domain, "url", Typology.romance),
                               (IntelKind.fraud_apk, "apk", Typology.fake_customer_service)}
    assert all(h.confidence == 0.9 and h.source == "mps_list" for h in out["hit-t"][1].intel)
    assert metric(stack, "antifraud_intel_hits_total", kind="fraud_apk") >= 1


def test_an_intel_change_counts_for_the_next_event_within_a_second(stack):
    number = "+8617000005555"
    stack.offer(telecom("mid-1", counterpart=number))
    assert stack.signals(["mid-1"])["mid-1"][1].intel == []  # now a cached miss in the worker

    stack.offer(IntelUpdate(event_id="mid-add", event_time=now(), kind=IntelKind.fraud_number, value=number,
                            typology=Typology.fake_customer_service))
    time.sleep(1.0)
    stack.offer(telecom("mid-2", counterpart=number))
    assert [h.kind for h in stack.signals(["mid-2"])["mid-2"][1].intel] == [IntelKind.fraud_number]

    stack.offer(IntelUpdate(event_id="mid-del", event_time=now(), kind=IntelKind.fraud_number, value=number,
                            op=UpdateOp.delete))
    time.sleep(1.0)
    stack.offer(telecom("mid-3", counterpart=number))
    assert stack.signals(["mid-3"])["mid-3"][1].intel == []


def test_an_undecodable_normalized_record_is_dead_lettered_not_lost(stack):
    stack.producer.produce(CATALOG.topic("norm_bank").name, b'{"event": "not an envelope"}')
    assert stack.producer.flush(30) == 0
    reader = Reader(stack.settings.kafka_bootstrap_servers, CATALOG.topic("dead_letter").name)
    try:
        dead = reader.read_until(lambda m: any(b'"stage":"enrich"' in x.value() for x in m), timeout=30)
    finally:
        reader.close()
    letter = msgspec.json.decode(next(x.value() for x in dead if b'"stage":"enrich"' in x.value()), type=DeadLetter)
    assert letter.source_topic == CATALOG.topic("norm_bank").name and letter.reason.value == "schema_violation"


def test_lookups_are_batched(stack):
    valkey = stack.valkey_client()
    before = valkey.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)
    # Distinct residents and counterparts: every event needs keys no cache holds.
    events = [telecom(f"batch-{n}", subscriber=f"+86138{n:08d}", counterpart=f"+86139{n:08d}") for n in range(300)]
    stack.offer(*events, normalized=True)
    stack.signals([e.event_id for e in events])
    mgets = valkey.info("commandstats")["cmdstat_mget"]["calls"] - before
    print(f"\n300 events -> {mgets} MGET calls")
    # Per micro-batch: one lookup, and one re-read of the exact intel entries in the contact-index
    # transaction (docs/enrichment.md, reference before judgement).
    assert mgets <= 60


def test_valkey_outage_holds_events_and_loses_none(stack):
    port = stack.valkey.port
    stack.valkey.stop()
    events = [telecom(f"outage-{n}", subscriber=(A_PHONE if n % 2 else C_PHONE), counterpart=FRAUD_NUMBER)
              for n in range(40)]
    events += [bank(f"outage-b-{n}", account=A_ACCOUNT, counterparty_account=MULE) for n in range(20)]
    stack.offer(*events, normalized=True)
    time.sleep(3.0)
    assert metric(stack, "antifraud_waiting_on_valkey", stage="enrich") == 1
    assert metric(stack, "antifraud_events_waiting_enrichment") > 0
    nothing = Reader(stack.settings.kafka_bootstrap_servers, CATALOG.topic("signals_enriched").name)
    assert not [m for m in nothing.read_for(1.0) if b'"outage-' in m.value()]  # none sent on unenriched
    nothing.close()

    stack.valkey = start_valkey(stack.run_dir, port=port)  # same port, same data directory (AOF)
    out = stack.signals([e.event_id for e in events], timeout=60)
    for _, signal in out.values():
        assert signal.identity_resolved == (signal.person_id == "P000001001")
        assert signal.person_id in ("P000001001", derived_person_id(C_PHONE))
        assert [h.kind for h in signal.intel] in ([IntelKind.fraud_number], [IntelKind.mule_account])
    reader = Reader(stack.settings.kafka_bootstrap_servers, CATALOG.topic("signals_enriched").name)

    def outage_ids() -> list[str]:
        return [e for e in (msgspec.json.decode(m.value(), type=EnrichedSignal).event_id for m in reader.messages)
                if e.startswith("outage-")]

    reader.read_until(lambda _m: len(outage_ids()) >= len(events))
    reader.read_for(1.5)
    reader.close()
    assert sorted(outage_ids()) == sorted(e.event_id for e in events)  # each exactly once
    assert metric(stack, "antifraud_waiting_on_valkey", stage="enrich") == 0
