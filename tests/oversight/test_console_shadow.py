"""The console's live-vs-shadow comparison, from the ledger's alerts and shadow alerts (real SQLite ledger).

The routing plan is the real one (routing.yaml): low = sms + ai_voice, medium = hotline_call +
app_push, high = police_visit + line_suspension; the candidate's routing also pushes at low.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from fastapi.testclient import TestClient
from rules_version_builders import ROUTING_WITH_LOW_PUSH, version

from dissuasion_builders import alert
from oversight.console import create_app
from oversight.records import RECORD_KINDS, decode
from oversight.writer import write_batch
from streams.contracts.alerts import Jurisdiction, ShadowAlert, Tier
from streams.contracts.common import Typology
from streams.contracts.rules_versions import RulesShadow
from streams.rules import get_rules
from streams.settings import Settings

TOKENS = {"tok-centre": "centre", "tok-ps03": "station:411602-PCS-03"}
ELSEWHERE = Jurisdiction("411603", "411603-PCS-01", "411603-01-001")
CANDIDATE = "2027.06-1"
_STORY_AT = [datetime.now(UTC)]  # set when a test writes the story, not when the module is imported (a full run
                                 # reaches this file minutes after collecting it, and the windows are in minutes)
SHIPPED = get_rules().version


def shadow_of(a, rules_version: str = CANDIDATE) -> ShadowAlert:
    a.rules_version = rules_version
    return msgspec.json.decode(msgspec.json.encode(a), type=ShadowAlert)


def write(engine, kind: str, records) -> None:
    batch = [decode(RECORD_KINDS[kind], msgspec.json.encode(r)) for r in records]
    with engine.begin() as conn:
        write_batch(conn, batch)


def at(minutes_ago: float) -> datetime:
    return _STORY_AT[0] - timedelta(minutes=minutes_ago)


def set_at() -> datetime:
    return at(10)


def load_shadow_story(engine) -> None:
    """A candidate set 10 minutes ago, live and shadow alerts since (and some that must be left out)."""
    _STORY_AT[0] = datetime.now(UTC)
    candidate = version(CANDIDATE, routing=ROUTING_WITH_LOW_PUSH, by="analyst-7", why="push at low too")
    write(engine, "RulesShadow", [RulesShadow(candidate=candidate, set_by="analyst-7", set_at=set_at(),
                                              why="push at low too")])
    write(engine, "Alert", [
        alert("P-A", Tier.low, at=at(8)),
        alert("P-B", Tier.low, alert_id="AL-P-B", at=at(7)),
        alert("P-B", Tier.medium, alert_id="AL-P-B", version=2, previous_tier=Tier.low, at=at(6)),
        alert("P-C", Tier.high, typology=Typology.investment, at=at(5)),
        alert("P-E", Tier.low, at=at(4), jurisdiction=ELSEWHERE),  # only the centre sees it
        alert("P-OLD", Tier.high, at=at(15)),  # before the candidate was set: not compared
    ])
    write(engine, "ShadowAlert", [
        shadow_of(alert("P-A", Tier.low, at=at(8))),
        shadow_of(alert("P-D", Tier.medium, at=at(3))),
        shadow_of(alert("P-X", Tier.high, at=at(3)), rules_version="2027.05-9"),  # another candidate's
    ])


@pytest.fixture
def ledger(ledger_engine):
    load_shadow_story(ledger_engine)
    with TestClient(create_app(Settings(console_tokens=TOKENS), ledger_engine)) as client:
        yield client, ledger_engine


def get(client, token="tok-ps03", **params):
    response = client.get("/api/rules/shadow", params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_no_shadow_says_so(ledger_engine):
    with TestClient(create_app(Settings(console_tokens=TOKENS), ledger_engine)) as client:
        assert client.get("/api/rules/shadow").status_code == 401
        assert get(client) == {"running": False, "candidate": None}


def test_live_and_candidate_side_by_side_within_the_shadows_window(ledger):
    client, _ = ledger
    body = get(client, minutes=60)
    assert (body["running"], body["candidate"], body["set_by"]) == (True, CANDIDATE, "analyst-7")
    assert body["since"] == set_at().isoformat()  # 60 minutes ago is before the candidate was set
    live, shadow = body["live"], body["shadow"]
    assert (live["version"], shadow["version"]) == (SHIPPED, CANDIDATE)
    assert (live["alerts"], live["persons"], live["tiers"]) == (4, 3, {"low": 2, "medium": 1, "high": 1})
    assert live["typologies"] == {"impersonate_police": 3, "investment": 1}
    assert (shadow["alerts"], shadow["persons"], shadow["tiers"]) == (2, 2, {"low": 1, "medium": 1})
    assert (body["only_live"], body["only_shadow"]) == ({"count": 2, "persons": ["P-B", "P-C"]},
                                                        {"count": 1, "persons": ["P-D"]})
    # Live: shipped routing. Shadow: its own routing (a push at low too). One send per alert, tier and
    # channel: P-B's medium version is a new tier of the same alert, so it adds medium's channels.
    assert {c["channel"]: (c["live"], c["shadow"], c["added"], c["avoided"]) for c in body["contacts"]} == {
        "sms": (2, 1, 0, 1), "ai_voice": (2, 1, 0, 1), "app_push": (1, 2, 1, 0), "hotline_call": (1, 1, 0, 0),
        "police_visit": (1, 0, 0, 1), "line_suspension": (1, 0, 0, 1)}


def test_the_centre_sees_the_whole_city_and_the_window_is_cut_by_minutes(ledger):
    client, _ = ledger
    assert get(client, token="tok-centre", minutes=60)["live"]["persons"] == 4  # P-E too
    short = get(client, token="tok-centre", minutes=5)
    assert short["since"] == (datetime.fromisoformat(short["until"]) - timedelta(minutes=5)).isoformat()
    assert (short["live"]["tiers"], short["shadow"]["tiers"]) == ({"low": 1}, {"medium": 1})  # P-E; P-D


def test_a_stopped_shadow_is_compared_up_to_its_stop(ledger):
    client, engine = ledger
    write(engine, "RulesShadow", [RulesShadow(candidate=None, set_by="lead-2", set_at=at(2), why="enough seen")])
    write(engine, "ShadowAlert", [shadow_of(alert("P-LATE", Tier.high, at=at(1)))])  # raised after the stop: left out
    body = get(client, minutes=60)
    assert (body["running"], body["candidate"], body["until"]) == (False, CANDIDATE, at(2).isoformat())
    assert body["shadow"]["persons"] == 2 and body["only_shadow"]["persons"] == ["P-D"]
