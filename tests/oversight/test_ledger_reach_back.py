"""The ledger keeps the reach-back of a retro alert version (回溯预警), and a ledger made before
reach-back existed migrates to it. Real SQLite files, no broker (the sink's own path over the
broker is tests/oversight/test_ledger.py)."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from ledger_data import load
from scenario import T0, Story, reach_back
from sqlalchemy import inspect, select

from oversight import schema
from oversight.db import alembic_config, make_engine, migrate
from streams.contracts import Tier
from streams.contracts.reference import IntelKind
from streams.settings import Settings


def retro_story() -> Story:
    s = Story("P-RB-1", "+8613600000001", county="ZK02", station="ZK02-PS01")
    s.alert("RB1", 0, tier=Tier.medium, events=("ev-rb-sms",))                        # a live alert first
    s.alert("RB1", 90, tier=Tier.high, version=2, events=("ev-rb-sms", "ev-rb-call"),  # then the number is listed
            reach_back=reach_back(90, 30, source="case_review", event_id="ev-rb-call"))
    return s


def rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(schema.alert_reach_back)).mappings()]


def test_a_retro_version_keeps_its_reach_back(ledger_engine):
    load(ledger_engine, [retro_story()])
    load(ledger_engine, [retro_story()])  # read twice: still one row
    [row] = rows(ledger_engine)
    assert row == dict(alert_id="RB1", version=2, person_id="P-RB-1", kind="fraud_number", source="case_review",
                       listed_at=(T0 + timedelta(minutes=90)).replace(tzinfo=None),
                       contacted_at=(T0 + timedelta(minutes=30)).replace(tzinfo=None),
                       event_id="ev-rb-call", county="ZK02", station="ZK02-PS01")


def test_an_alert_without_late_intelligence_has_no_reach_back(ledger_engine):
    s = Story("P-RB-2", "+8613600000002")
    s.alert("RB2", 0, tier=Tier.funds_warning)
    load(ledger_engine, [s])
    assert rows(ledger_engine) == []


def test_a_ledger_from_before_reach_back_migrates_and_keeps_its_alerts(ledger_url):
    settings = Settings()
    engine = make_engine(ledger_url)
    config = alembic_config(settings, ledger_url)
    with engine.begin() as conn:  # the ledger as the previous release left it
        config.attributes["connection"] = conn
        command.upgrade(config, "0001_initial")
    assert not inspect(engine).has_table("alert_reach_back")
    old = Story("P-RB-OLD", "+8613600000003")
    old.alert("RB-OLD", 0)
    load(engine, [old])
    engine.dispose()

    engine = migrate(settings, ledger_url)
    try:
        late = Story("P-RB-NEW", "+8613600000004")
        late.alert("RB-NEW", 10, reach_back=reach_back(10, 1, kind=IntelKind.mule_account, source="bank"))
        load(engine, [late])
        with engine.connect() as conn:
            assert set(conn.scalars(select(schema.alert_status.c.alert_id))) == {"RB-OLD", "RB-NEW"}
        assert [(r["alert_id"], r["kind"], r["source"]) for r in rows(engine)] == [("RB-NEW", "mule_account", "bank")]
    finally:
        engine.dispose()
