"""Reverse audit of a scripted case: a warned person becomes a fraud case; the audit lists
every step in order with the unit that held it, and names the broken ones. Real broker,
real Valkey registry, real ledger sink running beside the audit worker."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient
from scenario import Story, publish, wait_until
from sqlalchemy import select

from oversight import schema
from oversight.audit_worker import AuditWorker
from oversight.console import create_app
from oversight.contracts import Problem, StepKind
from oversight.ledger import LedgerSink
from streams.contracts import Channel, Result, Tier
from streams.contracts.dissuasion import EscalationReason
from streams.contracts.reference import AgeBand, IdentifierKind
from streams.kafka import producer_config
from streams.reference import PersonRecord, registry_key
from streams.settings import Settings
from streams.valkey import sync_client

PHONE = "+8613600000077"


def warned_then_defrauded() -> Story:
    s = Story("P-AUDIT", PHONE, account="acct-audit")
    s.alert("AU-OLD", -100 * 24 * 60, tier=Tier.low, events=("ev-old",))        # outside the 90-day look-back
    s.alert("AU1", 0, tier=Tier.medium, events=("ev-a1", "ev-a2"))
    sms = s.action("AU1", Channel.sms, 1)
    s.outcome(sms, Result.delivered, 2)
    s.alert("AU1", 5, tier=Tier.high, version=2, events=("ev-a1", "ev-a3"))
    s.action("AU1", Channel.police_visit, 6, sla_minutes=30)                     # never reported: SLA breach
    s.escalation("AU1", EscalationReason.new_transfer, 15, bank_request_ids=["BR-AUDIT"])
    s.bank_request("BR-AUDIT", 15)                                               # never acknowledged
    call = s.action("AU1", Channel.hotline_call, 16, reason="escalation:new_transfer")
    s.outcome(call, Result.refused, 20)                                          # refused, nothing followed
    s.case("CASE-AUDIT", 3 * 24 * 60, loss="120000.00")
    return s


def never_warned() -> Story:
    s = Story("P-NOT-WARNED", "+8613600000078")
    s.case("CASE-NOT-WARNED", 3 * 24 * 60, loss="5000.00")
    return s


@pytest.fixture
def registry(settings):
    client = sync_client(settings)
    key = registry_key(IdentifierKind.phone, PHONE)
    client.set(key, msgspec.json.encode(PersonRecord("P-AUDIT", "ZK01", "ZK01-PS01", "ZK01-PS01-G01",
                                                      AgeBand.age_70_plus, False, 1)))
    yield client
    client.delete(key)
    client.close()


def test_audit_of_a_scripted_case(settings, oversight_catalog, ledger_engine, group_id, registry):
    publish(Producer(producer_config(settings)), oversight_catalog, [warned_then_defrauded(), never_warned()])
    stop = threading.Event()
    sink = LedgerSink(settings, ledger_engine, oversight_catalog, group_id=group_id)
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    worker = AuditWorker(settings.model_copy(update={"audit_ledger_wait_s": 30.0}), ledger_engine, oversight_catalog,
                         group_id=group_id + "-audit", ledger_group_id=group_id)
    try:
        audits = {}
        deadline = time.monotonic() + 60
        while "CASE-AUDIT" not in audits or "CASE-NOT-WARNED" not in _cases(ledger_engine):
            assert time.monotonic() < deadline
            audits.update({r.case_id: r for r in worker.step()})
        record = audits["CASE-AUDIT"]
        assert "CASE-NOT-WARNED" not in audits
        assert worker.audit(never_warned().records[0][2].event) is None  # no alert in the look-back: no audit

        # Every step in order, the look-back respected, the case last.
        assert record.person_id == "P-AUDIT" and record.alert_ids == ["AU1"]
        assert [s.at for s in record.steps] == sorted(s.at for s in record.steps)
        kinds = [s.kind for s in record.steps]
        assert kinds[:2] == [StepKind.signal, StepKind.signal] and kinds[-1] is StepKind.case
        assert [s.ref for s in record.steps if s.kind is StepKind.signal] == ["ev-a1", "ev-a2", "ev-a3"]
        assert {(s.kind, s.unit) for s in record.steps} >= {
            (StepKind.alert, "station:ZK01-PS01"), (StepKind.action, "centre:automatic"),
            (StepKind.action, "station:ZK01-PS01"), (StepKind.action, "centre:96110"),
            (StepKind.escalation, "centre:escalation"), (StepKind.bank_request, "bank:ICBC"),
            (StepKind.case, "station:ZK01-PS01")}
        assert PHONE not in msgspec.json.encode(record).decode()

        # Where it broke, and whose step it was.
        found = sorted((f.problem, f.unit) for f in record.findings)
        assert found == sorted([
            (Problem.sla_breach, "station:ZK01-PS01"),
            (Problem.bank_request_unacknowledged, "bank:ICBC"),
            (Problem.refused_without_escalation, "centre:96110"),
        ])

        # Stored by the ledger from the audits topic, and counted per unit by the console.
        wait_until(lambda: _audit_rows(ledger_engine), timeout=30)
        app = create_app(Settings(console_tokens={"c": "centre", "s": "station:ZK01-PS01"}), ledger_engine)
        with TestClient(app) as client:
            by_unit = {r["unit"]: r["findings"] for r in client.get(
                "/api/stats/audits", headers={"Authorization": "Bearer s"}).json()["by_unit"]}
            assert by_unit == {"station:ZK01-PS01": 1, "bank:ICBC": 1, "centre:96110": 1}
            listed = client.get("/api/audits", headers={"Authorization": "Bearer c"}).json()["items"]
            assert "AUD-CASE-AUDIT" in [a["audit_id"] for a in listed]
            detail = client.get("/api/audits/AUD-CASE-AUDIT", headers={"Authorization": "Bearer s"}).json()
            assert detail["steps"][-1]["kind"] == "case"
    finally:
        worker.close()
        stop.set()
        thread.join(15)


def _cases(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(schema.case_reports.c.case_id)))


def _audit_rows(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(schema.audit_findings).where(
            schema.audit_findings.c.audit_id == "AUD-CASE-AUDIT")).first())
