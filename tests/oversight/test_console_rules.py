"""The console's rules history and diff, from the ledger's publications (real SQLite ledger)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from fastapi.testclient import TestClient
from rules_version_builders import ROUTING_WITH_LOW_PUSH, ROUTING_WITHOUT_EMERGENCY_VISIT, version
from sqlalchemy import func, select

from oversight import schema
from oversight.console import create_app
from oversight.records import RECORD_KINDS, decode
from oversight.writer import write_batch
from streams.rules import get_rules
from streams.settings import Settings

TOKENS = {"tok-centre": "centre", "tok-ps01": "station:ZK01-PS01"}
SHIPPED = get_rules().version


def publications():
    first = version("2027.03-1", routing=ROUTING_WITH_LOW_PUSH, by="analyst-7", why="low tier also pushes")
    second = version("2027.03-2", by="analyst-9", why="back to the shipped routing")
    second.published_at = first.published_at + timedelta(minutes=5)
    back = version("2027.03-1", routing=ROUTING_WITH_LOW_PUSH, by="lead-2", why="2027.03-2 sent too many calls")
    back.published_at, back.rollback_from = first.published_at + timedelta(minutes=9), "2027.03-2"
    # Written by something other than `antifraud rules publish`: the workers refused it.
    bad = version("2027.03-3", routing=ROUTING_WITHOUT_EMERGENCY_VISIT, by="script", why="raw write")
    bad.published_at = first.published_at + timedelta(minutes=12)
    return [first, second, back, bad]


@pytest.fixture
def client(ledger_engine):
    batch = [decode(RECORD_KINDS["RulesVersion"], msgspec.json.encode(r)) for r in publications()]
    for _ in range(2):  # the sink reading a batch again changes nothing
        with ledger_engine.begin() as conn:
            write_batch(conn, batch)
    with ledger_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.rules_publications)).scalar_one() == 4
    with TestClient(create_app(Settings(console_tokens=TOKENS), ledger_engine)) as c:
        yield c


def get(client, path, token="tok-ps01", **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def test_every_publication_newest_first_with_who_when_why(client):
    assert client.get("/api/rules/versions").status_code == 401
    body = get(client, "/api/rules/versions").json()
    assert (body["in_force"], body["shipped"]) == ("2027.03-1", SHIPPED)
    assert [(i["version"], i["published_by"], i["why"], i["rollback_from"], i["refused"]) for i in body["items"]] == [
        ("2027.03-3", "script", "raw write", None, True),
        ("2027.03-1", "lead-2", "2027.03-2 sent too many calls", "2027.03-2", False),
        ("2027.03-2", "analyst-9", "back to the shipped routing", None, False),
        ("2027.03-1", "analyst-7", "low tier also pushes", None, False),
    ]


def test_the_diff_between_two_versions_and_the_shipped_one(client):
    body = get(client, "/api/rules/diff", token="tok-centre", older="2027.03-2", newer="2027.03-1").json()
    assert '-version: "2027.03-2"\n+version: "2027.03-1"\n' in body["diff"]
    assert "+      - {channel: app_push, priority: 5, sla_s: 300}\n" in body["diff"]
    shipped = get(client, "/api/rules/diff", older=SHIPPED, newer="2027.03-2").json()["diff"]
    assert f'-version: "{SHIPPED}"\n+version: "2027.03-2"\n' in shipped and "routing.yaml@" not in shipped
    missing = get(client, "/api/rules/diff", older="nope", newer="2027.03-1")
    assert (missing.status_code, missing.json()["detail"]) == (404, "no rules version nope")
