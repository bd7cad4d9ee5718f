"""Reverse-audit explanations as desk work, on real parts: audits on the real broker stored by the
real ledger sink, then the console app. The accountable station signs in and writes its explanation
at the desk; the centre's audit view shows it, and shows the other unit's explanation overdue; an
explanation is written once, by its own unit only, and every write is in the access log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient
from scenario import wait_until
from sqlalchemy import select

from oversight import schema
from oversight.console import create_app
from oversight.contracts import AuditFinding, AuditRecord, AuditStep, Problem, StepKind
from oversight.desk import people
from oversight.ledger import LedgerSink
from streams.contracts.common import Typology
from streams.kafka import producer_config

TOKENS = {"tok-centre": "centre", "tok-b": "station:ZK03-PS08", "tok-zk01": "county:ZK03"}
PASSWORD = "correct horse battery"
OURS = {"AUD-CASE-EXPL-NEW", "AUD-CASE-EXPL-OLD"}  # this file's audits (the ledger may hold other files')
WHY = "The visit was sent to the wrong grid; the officer on duty did not report it. Rota fixed since."


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def audit_of(case_id: str, audited_ago: timedelta, station: str = "ZK03-PS07") -> AuditRecord:
    at = datetime.now(UTC) - audited_ago
    return AuditRecord(
        audit_id=f"AUD-{case_id}", case_id=case_id, case_event_id=f"ev-{case_id}", person_id=f"P-{case_id}",
        typology=Typology.investment, county="ZK03", station=station, filed_at=at - timedelta(minutes=5),
        occurred_at=at - timedelta(days=1), lookback_days=90, alert_ids=[f"AL-{case_id}"],
        steps=[AuditStep(at=at - timedelta(minutes=5), kind=StepKind.case, ref=case_id, unit=f"station:{station}",
                         summary="fraud case filed (investment)")],
        findings=[AuditFinding(Problem.sla_breach, f"station:{station}", f"AL-{case_id}", "ZK03", station,
                               ref=f"AL-{case_id}:police_visit", detail="police_visit never reported"),
                  AuditFinding(Problem.bank_request_unacknowledged, "bank:ICBC", f"AL-{case_id}", "ZK03", station)],
        responsible_units=[f"station:{station}", "station:ZK03-PS08"], audited_at=at, loss_amount="38000.00")


@pytest.fixture
def stored_audits(settings, oversight_catalog, ledger_engine, group_id):
    """A fresh audit (due in 3 days) and one audited 4 days ago (overdue), stored by the ledger sink."""
    records = [audit_of("CASE-EXPL-NEW", timedelta(minutes=1)), audit_of("CASE-EXPL-OLD", timedelta(days=4))]
    producer = Producer(producer_config(settings))
    for record in records:
        producer.produce(oversight_catalog.topic("audits").name, key=record.case_id.encode(),
                         value=msgspec.json.encode(record))
    assert producer.flush(10) == 0
    stop = threading.Event()
    sink = LedgerSink(settings, ledger_engine, oversight_catalog, group_id=group_id)
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: _stored(ledger_engine) >= {r.audit_id for r in records}, timeout=30)
    finally:
        stop.set()
        thread.join(15)
    with ledger_engine.begin() as conn:
        people.add_user(conn, "wang.fang", "station:ZK03-PS07", "station_lead", PASSWORD)
        people.add_user(conn, "zhao.lei", "station:ZK03-PS07", "auditor", PASSWORD)
    return records


@pytest.fixture
def client(settings, ledger_engine):
    with TestClient(create_app(settings.model_copy(update={"console_tokens": TOKENS}), ledger_engine)) as c:
        yield c


def sign_in(client, user: str) -> dict:
    response = client.post("/api/desk/session", json={"user": user, "password": PASSWORD})
    assert response.status_code == 201
    return auth(response.json()["token"])


def test_a_station_writes_its_explanation_at_the_desk_and_the_centre_sees_it_and_the_overdue_one(
        client, stored_audits, ledger_engine):
    lead = sign_in(client, "wang.fang")
    owed = client.get("/api/desk/explanations", headers=lead).json()
    # The ledger sink reads the whole audits topic: another test file on this broker may have left audits too.
    mine = [i for i in owed["items"] if i["audit_id"] in OURS]
    assert [(i["audit_id"], i["state"]) for i in mine] == [
        ("AUD-CASE-EXPL-OLD", "overdue"), ("AUD-CASE-EXPL-NEW", "awaited")]  # overdue first
    assert owed["overdue"] == sum(i["state"] == "overdue" for i in owed["items"]) >= 1
    assert [f["problem"] for f in mine[1]["findings"]] == ["sla_breach"]  # its own step, not the bank's

    written = client.post("/api/desk/explanations/AUD-CASE-EXPL-NEW", headers=lead, json={"text": WHY})
    assert written.status_code == 201 and written.json()["explanation"]["state"] == "written"
    again = client.post("/api/desk/explanations/AUD-CASE-EXPL-NEW", headers=lead, json={"text": WHY})
    assert (again.status_code, again.json()["written_now"]) == (200, False)
    other = client.post("/api/desk/explanations/AUD-CASE-EXPL-NEW", headers=lead, json={"text": WHY + " Also..."})
    assert other.status_code == 409 and other.json()["explanation"]["text"] == WHY  # the first one stands

    # Only the owing unit writes: another unit 404 (as if absent), an auditor 403, the centre owes nothing.
    assert client.post("/api/desk/explanations/AUD-CASE-EXPL-NEW", headers=auth("tok-centre"),
                       json={"text": WHY}).status_code == 404
    assert client.post("/api/desk/explanations/AUD-CASE-EXPL-NOPE", headers=lead, json={"text": WHY}).status_code == 404
    assert client.post("/api/desk/explanations/AUD-CASE-EXPL-OLD", headers=sign_in(client, "zhao.lei"),
                       json={"text": WHY}).status_code == 403
    assert client.post("/api/desk/explanations/AUD-CASE-EXPL-OLD", headers=lead,
                       json={"text": "short"}).status_code == 422
    assert client.get("/api/desk/explanations", headers={}).status_code == 401

    # The centre's audit view: the station's explanation, the second station's still awaited.
    detail = client.get("/api/audits/AUD-CASE-EXPL-NEW", headers=auth("tok-centre")).json()
    by_unit = {e["unit"]: e for e in detail["explanations"]}
    assert set(by_unit) == {"station:ZK03-PS07", "station:ZK03-PS08"}  # the bank owes no explanation here
    assert (by_unit["station:ZK03-PS07"]["state"], by_unit["station:ZK03-PS07"]["text"],
            by_unit["station:ZK03-PS07"]["written_by"], by_unit["station:ZK03-PS07"]["late"]) == (
        "written", WHY, "wang.fang", False)
    assert by_unit["station:ZK03-PS08"]["state"] == "awaited" and detail["explanations_overdue"] == 0
    listed = {a["audit_id"]: a for a in client.get("/api/audits", headers=auth("tok-centre")).json()["items"]}
    assert listed["AUD-CASE-EXPL-OLD"]["explanations_overdue"] == 2
    overdue = client.get("/api/audit-explanations", headers=auth("tok-centre")).json()
    assert sorted((e["audit_id"], e["unit"]) for e in overdue["items"] if e["audit_id"] in OURS) == [
        ("AUD-CASE-EXPL-OLD", "station:ZK03-PS07"), ("AUD-CASE-EXPL-OLD", "station:ZK03-PS08")]

    # A unit token (the station's own system) writes for its unit; late, and the centre sees it late.
    late = client.post("/api/desk/explanations/AUD-CASE-EXPL-OLD", headers=auth("tok-b"), json={"text": WHY})
    assert late.status_code == 201 and late.json()["explanation"]["late"] is True
    overdue = client.get("/api/audit-explanations", headers=auth("tok-centre")).json()
    assert [(e["audit_id"], e["unit"]) for e in overdue["items"] if e["audit_id"] in OURS] == [
        ("AUD-CASE-EXPL-OLD", "station:ZK03-PS07")]
    # The county bureau sees its stations' explanations at the desk.
    county = client.get("/api/desk/explanations", headers=auth("tok-zk01"), params={"state": "written"}).json()
    assert {(i["audit_id"], i["unit"]) for i in county["items"] if i["audit_id"] in OURS} == {
        ("AUD-CASE-EXPL-NEW", "station:ZK03-PS07"), ("AUD-CASE-EXPL-OLD", "station:ZK03-PS08")}

    # Every explanation written is in the access log, with who wrote it; the repeats are not.
    with ledger_engine.connect() as conn:
        logged = conn.execute(select(schema.access_log.c.unit, schema.access_log.c.actor, schema.access_log.c.alert_id)
                              .where(schema.access_log.c.field == "audit_explanation")).all()
    assert sorted(logged, key=str) == sorted([("station:ZK03-PS07", "wang.fang", "AL-CASE-EXPL-NEW"),
                                              ("station:ZK03-PS08", None, "AL-CASE-EXPL-OLD")], key=str)


def _stored(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(schema.audits.c.audit_id)))
