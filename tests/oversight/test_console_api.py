"""The console's HTTP API: filters, pagination, sorting, statistics, and least privilege
(unit scope, partner refusal, masked phones, logged reveals). Real SQLite ledger."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from ledger_data import load
from scenario import T0, Story
from sqlalchemy import select

from oversight import schema
from oversight.console import create_app
from streams.contracts import Channel, Result, Tier
from streams.contracts.common import Typology
from streams.contracts.dissuasion import EscalationReason
from streams.settings import Settings

TOKENS = {"tok-centre": "centre", "tok-ps01": "station:ZK01-PS01", "tok-zk02": "county:ZK02",
          "sha256:" + hashlib.sha256(b"tok-bank").hexdigest(): "bank:ICBC"}


def stories() -> list[Story]:
    a = Story("P-API-A", "+8613700000001")
    a.alert("A1", 0, tier=Tier.medium, typology=Typology.investment)
    a.alert("A1", 5, tier=Tier.high, typology=Typology.investment, version=2)
    sms = a.action("A1", Channel.sms, 1)
    a.outcome(sms, Result.delivered, 3)                      # first contact 3 min after the alert
    visit = a.action("A1", Channel.police_visit, 6, sla_minutes=30)
    a.outcome(visit, Result.dissuaded, 50)                   # late: a breach for the station

    b = Story("P-API-B", "+8613700000002", station="ZK01-PS02", account="acct-api-b")
    b.alert("B1", 60, tier=Tier.funds_warning, typology=Typology.impersonate_police)
    call = b.action("B1", Channel.hotline_call, 61)
    b.outcome(call, Result.refused, 70)                      # first contact 10 min after
    b.escalation("B1", EscalationReason.refused, 71, trigger=call.action_id)
    b.case("CASE-API-B", 900, loss="50000.00", typology=Typology.impersonate_police)

    c = Story("P-API-C", "+8613700000003", county="ZK02", station="ZK02-PS01", grid="ZK02-PS01-G07")
    c.alert("C1", 24 * 60, tier=Tier.low, typology=Typology.order_brushing)
    sms_c = c.action("C1", Channel.sms, 24 * 60 + 1)
    c.outcome(sms_c, Result.unreachable, 24 * 60 + 2)

    d = Story("P-API-D", "+8613700000004", county="ZK02", station="ZK02-PS01")
    d.alert("D1", 24 * 60 + 30, tier=Tier.medium, typology=Typology.investment)
    call_d = d.action("D1", Channel.hotline_call, 24 * 60 + 31)
    d.outcome(call_d, Result.dissuaded, 24 * 60 + 32)
    d.case("CASE-API-X", 2000, loss="30000.00", typology=Typology.investment)  # someone else's case, same station
    d.records[-1] = (d.records[-1][0], d.records[-1][1], _other_victim(d.records[-1][2]))
    return [a, b, c, d]


def _other_victim(envelope):
    envelope.event.victim_phone = "+8613700009999"
    return envelope


@pytest.fixture
def client(ledger_engine):
    load(ledger_engine, stories())
    settings = Settings(console_tokens=TOKENS, console_phone_roles=["station"])
    with TestClient(create_app(settings, ledger_engine)) as c:
        yield c


def get(client, path, token="tok-centre", **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["alert_id"] for i in response.json()["items"]]


def test_a_token_is_required_and_partners_see_nothing(client):
    assert get(client, "/api/alerts", token=None).status_code == 401
    assert get(client, "/api/alerts", token="not-a-token").status_code == 401
    assert get(client, "/api/alerts", token="tok-bank").status_code == 403
    assert get(client, "/api/stats/warnings", token="tok-bank").status_code == 403
    assert get(client, "/api/me", token="tok-ps01").json()["unit"] == "station:ZK01-PS01"


def test_each_unit_sees_its_jurisdiction_only(client):
    assert sorted(ids(get(client, "/api/alerts"))) == ["A1", "B1", "C1", "D1"]
    assert ids(get(client, "/api/alerts", token="tok-ps01")) == ["A1"]
    assert sorted(ids(get(client, "/api/alerts", token="tok-zk02"))) == ["C1", "D1"]
    # Asking for another area's filter does not widen the scope.
    assert ids(get(client, "/api/alerts", token="tok-ps01", county="ZK02")) == []
    assert get(client, "/api/alerts/B1", token="tok-ps01").status_code == 404
    assert get(client, "/api/stats/warnings", token="tok-ps01").json()["total"] == 1
    assert get(client, "/api/stats/case-types", token="tok-ps01").json() == []
    assert [t["typology"] for t in get(client, "/api/stats/case-types", token="tok-zk02").json()] == ["investment"]


def test_filters(client):
    assert ids(get(client, "/api/alerts", tier="high")) == ["A1"]
    assert sorted(ids(get(client, "/api/alerts", tier=["high", "funds_warning"]))) == ["A1", "B1"]
    assert ids(get(client, "/api/alerts", typology="order_brushing")) == ["C1"]
    assert ids(get(client, "/api/alerts", status="unreachable")) == ["C1"]
    assert ids(get(client, "/api/alerts", status="closed")) == ["B1"]  # a case was filed after the warning
    assert sorted(ids(get(client, "/api/alerts", status="dissuaded"))) == ["A1", "D1"]
    assert ids(get(client, "/api/alerts", channel="police_visit")) == ["A1"]
    assert ids(get(client, "/api/alerts", grid="ZK02-PS01-G07")) == ["C1"]
    assert ids(get(client, "/api/alerts", station="ZK01-PS02")) == ["B1"]
    day2 = (T0 + timedelta(hours=20)).isoformat()
    assert sorted(ids(get(client, "/api/alerts", since=day2))) == ["C1", "D1"]
    assert sorted(ids(get(client, "/api/alerts", until=day2))) == ["A1", "B1"]
    assert get(client, "/api/alerts", tier="martian").status_code == 422


def test_pagination_and_sort(client):
    pages = [ids(get(client, "/api/alerts", page=p, page_size=3, sort="alert_at")) for p in (1, 2)]
    assert pages == [["A1", "B1", "C1"], ["D1"]]
    assert get(client, "/api/alerts", page_size=3).json()["total"] == 4
    assert ids(get(client, "/api/alerts", sort="-alert_at")) == ["D1", "C1", "B1", "A1"]
    assert ids(get(client, "/api/alerts", sort="-tier")) == ["B1", "A1", "D1", "C1"]


def test_phones_are_masked_and_every_reveal_is_logged(client, ledger_engine):
    item = get(client, "/api/alerts", token="tok-ps01").json()["items"][0]
    assert item["phone"] == "*" * 12 + "01" and "+86137" not in str(item)
    assert get(client, "/api/alerts", reveal="true").status_code == 403  # the centre's role may not reveal
    revealed = get(client, "/api/alerts/A1", token="tok-ps01", reveal="true").json()
    assert revealed["phone"] == "+8613700000001"
    with ledger_engine.connect() as conn:
        log = conn.execute(select(schema.access_log)).mappings().all()
    assert [(r["unit"], r["alert_id"], r["field"]) for r in log] == [("station:ZK01-PS01", "A1", "phone")]


def test_timeline_runs_from_signals_to_outcomes(client):
    detail = get(client, "/api/alerts/A1").json()
    kinds = [s["kind"] for s in detail["timeline"]]
    assert kinds[0] == "signal" and kinds.count("alert") == 2 and kinds[-1] == "outcome"
    units = {s["kind"] + ":" + s["unit"] for s in detail["timeline"]}
    assert "action:station:ZK01-PS01" in units and "action:centre:automatic" in units


def test_statistics(client):
    w = get(client, "/api/stats/warnings", bucket="day", area="county").json()
    assert w["total"] == 4
    assert {r["typology"]: r["count"] for r in w["by_type"]}["investment"] == 2
    assert {r["area"]: r["count"] for r in w["by_area"]} == {"ZK01": 2, "ZK02": 2}
    assert [r["count"] for r in w["by_time"]] == [2, 2]

    d = get(client, "/api/stats/dissuasion").json()
    assert (d["success"], d["failure"], d["pending"]) == (2, 2, 0)  # A1, D1 vs B1 (case), C1 (unreachable)
    assert d["success_rate"] == 0.5

    fc = get(client, "/api/stats/first-contact").json()
    assert fc["all"]["contacted"] == 3 and fc["all"]["not_contacted"] == 1
    assert fc["all"]["p50"] == 180.0 and fc["all"]["p99"] == 600.0  # D1 2 min, A1 3 min, B1 10 min

    sla = {r["unit"]: r for r in get(client, "/api/stats/sla-breaches").json()}
    assert sla["station:ZK01-PS01"]["breached"] == 1 and sla["centre:automatic"]["breached"] == 0

    losses = get(client, "/api/stats/losses").json()
    assert losses["reported"] == "80000.00"
    # A1 (investment) and D1 (investment) avoided the average investment loss: 30,000 each.
    assert losses["estimated_avoided"] == "60000.00"

    areas = get(client, "/api/stats/high-risk-areas").json()
    assert (areas[0]["station"], areas[0]["risk_index"]) == ("ZK01-PS02", 2)
    types = get(client, "/api/stats/case-types").json()
    assert {t["typology"] for t in types} == {"impersonate_police", "investment"}


def test_openapi_is_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/alerts", "/api/alerts/{alert_id}", "/api/stats/dissuasion", "/api/audits"} <= set(paths)
