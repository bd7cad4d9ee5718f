"""The ledger: every record once (however often it is read), derived statuses, and a rebuild
from the topics that gives the same database. Real embedded broker, real SQLite files."""

from __future__ import annotations

import time

import msgspec
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from confluent_kafka import Producer
from scenario import Story, publish, reach_back
from sqlalchemy import create_engine, select

from oversight import schema
from oversight.db import migrate
from oversight.ledger import UNREADABLE, LedgerNotEmpty, LedgerSink, rebuild
from streams.catalog import Catalog
from streams.contracts import Channel, Result, Tier
from streams.contracts.dissuasion import EscalationReason
from streams.kafka import producer_config


def stories() -> list[Story]:
    a = Story("P-LEDGER-A", "+8613900000001")
    a.alert("AL-A", 0, tier=Tier.medium)
    a.alert("AL-A", 5, tier=Tier.high, version=2)
    sms = a.action("AL-A", Channel.sms, 1)
    a.outcome(sms, Result.delivered, 2)
    visit = a.action("AL-A", Channel.police_visit, 6, sla_minutes=30)
    a.outcome(visit, Result.dissuaded, 50)  # 44 min after: an SLA breach

    b = Story("P-LEDGER-B", "+8613900000002", station="ZK01-PS02", account="acct-b")
    b.alert("AL-B", 10, tier=Tier.funds_warning)
    call = b.action("AL-B", Channel.hotline_call, 11)
    b.outcome(call, Result.refused, 15)
    b.escalation("AL-B", EscalationReason.refused, 16, trigger=call.action_id, bank_request_ids=["BR-B"])
    b.bank_request("BR-B", 16)
    b.carrier_request("CR-B", 17)
    b.case("CASE-B", 600)

    c = Story("P-LEDGER-C", "+8613900000003", county="ZK02", station="ZK02-PS01")
    c.alert("AL-C", 20, tier=Tier.low, reach_back=reach_back(20, -300, source="carrier", event_id="ev-c-call"))
    sms_c = c.action("AL-C", Channel.sms, 21)
    c.outcome(sms_c, Result.unreachable, 22)
    return [a, b, c]


def drain(sink: LedgerSink, timeout: float = 60.0) -> None:
    """Step until everything on the topics is written: two empty polls after the last record."""
    deadline = time.monotonic() + timeout
    empty, seen = 0, 0
    while empty < 3 or seen == 0:
        assert time.monotonic() < deadline, "ledger did not catch up"
        n = sink.step()
        seen += n
        empty = 0 if n else empty + 1


def dump(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                for t in schema.REBUILT_TABLES}


def test_migrations_create_exactly_the_schema(tmp_path, settings):
    engine = migrate(settings, f"sqlite:///{tmp_path / 'm.sqlite3'}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    migrate(settings, f"sqlite:///{tmp_path / 'm.sqlite3'}")  # at head already: a no-op


def test_every_record_once_statuses_and_rebuild(settings, oversight_catalog, ledger_engine, group_id, tmp_path):
    producer = Producer(producer_config(settings))
    publish(producer, oversight_catalog, stories(), repeat=2)  # every record twice: a replay

    sink = LedgerSink(settings, ledger_engine, oversight_catalog, group_id=group_id)
    try:
        drain(sink)
    finally:
        sink.close()

    with ledger_engine.connect() as conn:
        versions = conn.execute(select(schema.alerts.c.version).where(schema.alerts.c.alert_id == "AL-A")).all()
        assert sorted(v for (v,) in versions) == [1, 2]
        status = {r.alert_id: r for r in conn.execute(select(schema.alert_status).where(
            schema.alert_status.c.alert_id.in_(["AL-A", "AL-B", "AL-C"])))}
        links = conn.execute(select(schema.bank_request_alerts)).mappings().all()
        retro = conn.execute(select(schema.alert_reach_back.c.alert_id, schema.alert_reach_back.c.source).where(
            schema.alert_reach_back.c.alert_id.in_(["AL-A", "AL-B", "AL-C"]))).all()
    assert status["AL-A"].status == "dissuaded" and status["AL-A"].tier == "high" and status["AL-A"].version == 2
    assert status["AL-A"].sla_breaches == 1 and status["AL-A"].channels == "police_visit,sms"
    assert status["AL-A"].first_contact_at is not None
    assert status["AL-B"].status == "closed" and status["AL-B"].case_filed  # a case was filed after the warning
    assert status["AL-C"].status == "unreachable" and status["AL-C"].county == "ZK02"
    assert {(link["request_id"], link["alert_id"]) for link in links} >= {("BR-B", "AL-B")}
    assert retro == [("AL-C", "carrier")]  # the retro version's reach-back, and only that one (the rebuild too)

    before = dump(ledger_engine)
    for table in ("actions", "outcomes", "case_reports"):
        ids = [r[0] for r in before[table]]
        assert len(ids) == len(set(ids))

    # Reading everything again (another group, same database) changes nothing.
    again = LedgerSink(settings, ledger_engine, oversight_catalog, group_id=group_id + "-again")
    try:
        drain(again)
    finally:
        again.close()
    assert dump(ledger_engine) == before

    # A rebuild from the topics into an empty database gets the same content.
    rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}"
    counts = rebuild(settings, rebuilt_url, catalog=oversight_catalog)
    assert counts["Alert"] >= 4
    rebuilt = create_engine(rebuilt_url)
    assert dump(rebuilt) == before
    with pytest.raises(LedgerNotEmpty):
        rebuild(settings, rebuilt_url, catalog=oversight_catalog)
    rebuilt.dispose()


def test_an_unreadable_record_is_skipped_and_counted(settings, oversight_catalog, ledger_engine, group_id,
                                                     topic_factory):
    # A catalog whose only ledger topic is a fresh one, so the garbage reaches no other test.
    topic = topic_factory(partitions=1, prefix="test.oversight.alerts")
    alerts = oversight_catalog.topic("alerts").model_copy(update={"name": topic})
    catalog = Catalog(app_id=oversight_catalog.app_id, defaults=oversight_catalog.defaults, topics={"alerts": alerts})
    story = Story("P-LEDGER-BAD", "+8613900000009")
    story.alert("AL-BAD", 0)
    producer = Producer(producer_config(settings))
    producer.produce(topic, value=b"{not json")
    producer.produce(topic, value=msgspec.json.encode(story.records[0][2]))
    producer.flush(10)
    before = UNREADABLE.labels("alerts")._value.get()

    sink = LedgerSink(settings, ledger_engine, catalog, group_id=group_id)
    try:
        drain(sink)
    finally:
        sink.close()
    with ledger_engine.connect() as conn:
        assert conn.execute(select(schema.alert_status.c.alert_id)).scalars().all() == ["AL-BAD"]
    assert UNREADABLE.labels("alerts")._value.get() == before + 1
