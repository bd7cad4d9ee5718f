"""Retro alerts (回溯预警) in the console's API: marked in lists and details with both times,
counted per intel source, each unit within its jurisdiction; the city-wide reach-back backlog
for the centre only. Real SQLite ledger; the backlog against a real broker is
tests/oversight/test_console_backlog.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from ledger_data import load
from scenario import T0, Story, reach_back

from oversight.console import create_app
from streams.contracts import Tier
from streams.contracts.reference import IntelKind
from streams.settings import Settings

TOKENS = {"tok-centre": "centre", "tok-ps01": "station:ZK01-PS01", "tok-zk02": "county:ZK02"}


def stories() -> list[Story]:
    # ZK01-PS01: a number listed by a carrier 60 min after a resident answered it (the alert rises).
    a = Story("P-RB-A", "+8613500000001")
    a.alert("RA", 0, tier=Tier.medium, events=("ev-a-sms",))
    a.alert("RA", 60, tier=Tier.high, version=2, events=("ev-a-sms", "ev-a-call"),
            reach_back=reach_back(60, -5, source="carrier", event_id="ev-a-call"))
    # ZK01-PS01: the same carrier listing reaches a second resident; no alert before it.
    b = Story("P-RB-B", "+8613500000002")
    b.alert("RB", 61, tier=Tier.medium, events=("ev-b-call",),
            reach_back=reach_back(60, 20, source="carrier", event_id="ev-b-call"))
    # ZK02: a transfer to an account a bank listed 30 min later: a funds warning.
    c = Story("P-RB-C", "+8613500000003", county="ZK02", station="ZK02-PS01")
    c.alert("RC", 120, tier=Tier.funds_warning, events=("ev-c-transfer",),
            reach_back=reach_back(120, 90, source="bank", kind=IntelKind.mule_account, event_id="ev-c-transfer"))
    # ZK02: an ordinary alert, intelligence known at the contact.
    d = Story("P-RB-D", "+8613500000004", county="ZK02", station="ZK02-PS01")
    d.alert("RD", 130, tier=Tier.high)
    return [a, b, c, d]


@pytest.fixture
def client(ledger_engine):
    load(ledger_engine, stories())
    settings = Settings(console_tokens=TOKENS)  # no broker: the backlog says so
    with TestClient(create_app(settings, ledger_engine)) as c:
        yield c


def get(client, path, token="tok-centre", **params):
    response = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_retro_alerts_are_marked_in_the_list_with_both_times(client):
    items = {i["alert_id"]: i for i in get(client, "/api/alerts")["items"]}
    assert {k for k, v in items.items() if v["retro"]} == {"RA", "RB", "RC"}
    assert items["RD"]["reach_back"] is None
    ra = items["RA"]["reach_back"]
    assert (ra["version"], ra["kind"], ra["source"], ra["event_id"]) == (2, "fraud_number", "carrier", "ev-a-call")
    assert datetime.fromisoformat(ra["listed_at"]) == T0 + timedelta(minutes=60)
    assert datetime.fromisoformat(ra["contacted_at"]) == T0 - timedelta(minutes=5)


def test_the_retro_filter(client):
    assert sorted(i["alert_id"] for i in get(client, "/api/alerts", retro="true")["items"]) == ["RA", "RB", "RC"]
    assert [i["alert_id"] for i in get(client, "/api/alerts", retro="false")["items"]] == ["RD"]
    assert get(client, "/api/stats/warnings", retro="true")["total"] == 3


def test_the_detail_and_timeline_say_listed_at_and_contacted_at(client):
    detail = get(client, "/api/alerts/RA")
    assert detail["retro"] and [v["version"] for v in detail["reach_back"]] == [2]
    alerts = [s for s in detail["timeline"] if s["kind"] == "alert"]
    assert "retro" not in alerts[0]["summary"]  # v1 was raised at the contact's time, as usual
    assert "retro alert (回溯预警): fraud_number entry listed at 2026-11-20T10:00:00" in alerts[1]["summary"]
    assert "contacted at 2026-11-20T08:55:00" in alerts[1]["summary"] and "by carrier" in alerts[1]["summary"]
    call = next(s for s in detail["timeline"] if s["ref"] == "ev-a-call")
    assert datetime.fromisoformat(call["at"]) == T0 - timedelta(minutes=5)  # placed at the contact, before the listing
    assert get(client, "/api/alerts/RD")["reach_back"] == []


def test_counts_per_source_for_the_centre(client):
    stats = get(client, "/api/stats/reach-back")
    assert (stats["alerts_in_view"], stats["retro_alerts"], stats["residents"]) == (4, 3, 3)
    sources = {s["source"]: s for s in stats["sources"]}
    assert [s["source"] for s in stats["sources"]] == ["carrier", "bank"]  # most residents first
    assert sources["carrier"] == {"source": "carrier", "alerts": 2, "residents": 2, "funds_warnings": 0,
                                  "by_list": {"fraud_number": 2}, "delay_p50_s": 3150.0}  # 65 and 40 min
    assert sources["bank"]["funds_warnings"] == 1 and sources["bank"]["by_list"] == {"mule_account": 1}
    assert sources["bank"]["delay_p50_s"] == 1800.0


def test_each_unit_counts_its_own_jurisdiction(client):
    station = get(client, "/api/stats/reach-back", token="tok-ps01")
    assert [(s["source"], s["residents"]) for s in station["sources"]] == [("carrier", 2)]
    assert (station["alerts_in_view"], station["retro_alerts"]) == (2, 2)
    county = get(client, "/api/stats/reach-back", token="tok-zk02")
    assert [(s["source"], s["residents"]) for s in county["sources"]] == [("bank", 1)]
    assert [i["alert_id"] for i in get(client, "/api/alerts", token="tok-zk02", retro="true")["items"]] == ["RC"]
    # Another area's filter does not widen the scope.
    assert get(client, "/api/stats/reach-back", token="tok-ps01", county="ZK02")["sources"] == []


def test_nothing_added_shows_a_phone_or_an_account(client):
    for path in ("/api/stats/reach-back", "/api/alerts", "/api/alerts/RC"):
        text = client.get(path, headers={"Authorization": "Bearer tok-centre"}).text
        assert "+86135" not in text and "acct-0001" not in text


def test_the_backlog_is_the_centres_and_says_when_there_is_no_broker(client):
    assert client.get("/api/reach-back/backlog", headers={"Authorization": "Bearer tok-ps01"}).status_code == 403
    assert client.get("/api/reach-back/backlog", headers={"Authorization": "Bearer tok-zk02"}).status_code == 403
    backlog = get(client, "/api/reach-back/backlog")
    assert backlog["waiting"] is None and "no broker" in backlog["error"]
    assert backlog["topic"] == "antifraud.intel.reach_back" and backlog["group"] == "antifraud"


def test_the_reach_back_counts_take_the_dashboard_filters_too(client):
    # The dashboard asks the counts with its filters: with `retro` or `channel` set, the filter's subquery
    # once lost both its tables to the outer query's FROM and the request failed.
    assert get(client, "/api/stats/reach-back", retro="true")["retro_alerts"] == 3
    assert get(client, "/api/stats/reach-back", retro="false")["retro_alerts"] == 0
    assert get(client, "/api/stats/reach-back", channel="sms")["alerts_in_view"] >= 0
