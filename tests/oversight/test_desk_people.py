"""People at the desk, on a real ledger database: sign-in and sessions that expire, taking and
handing over tasks, the phone shown only to the assignee, and every write in the access log."""

from __future__ import annotations

import time

import pytest
from desk_data import PHONE, desk_action, recorded
from fastapi.testclient import TestClient
from sqlalchemy import select

from oversight import schema
from oversight.console import create_app
from oversight.desk.people import add_user
from streams.contracts.actions import Channel
from streams.contracts.alerts import Tier
from streams.masking import mask
from streams.settings import Settings

PASSWORD = "correct horse battery"
USERS = [("li.officer", "station:ZK01-PS01", "officer"), ("wang.officer", "station:ZK01-PS01", "officer"),
         ("zhao.lead", "station:ZK01-PS01", "station_lead"), ("chen.other", "station:ZK01-PS02", "officer"),
         ("sun.auditor", "station:ZK01-PS01", "auditor"), ("zhou.operator", "hotline:96110", "operator"),
         ("wu.operator", "hotline:96110", "operator")]


@pytest.fixture
def desk(ledger_engine):
    with ledger_engine.begin() as conn:
        for user, unit, role in USERS:
            add_user(conn, user, unit, role, PASSWORD)
    app = create_app(Settings(console_tokens={"tok-a": "station:ZK01-PS01"}, desk_session_ttl_s=60), ledger_engine)
    with TestClient(app) as client:
        yield client


def signed_in(client, user: str) -> dict:
    reply = client.post("/api/desk/session", json={"user": user, "password": PASSWORD})
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def log_rows(engine) -> list[tuple]:
    a = schema.access_log
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(a.c.actor, a.c.unit, a.c.field).order_by(a.c.id))]


def test_sign_in_gives_a_session_that_ends(desk, ledger_engine):
    assert desk.post("/api/desk/session", json={"user": "li.officer", "password": "wrong password!"}).status_code == 401
    assert desk.post("/api/desk/session", json={"user": "nobody", "password": PASSWORD}).status_code == 401
    li = signed_in(desk, "li.officer")
    assert desk.get("/api/desk/tasks", headers=li).status_code == 200
    assert desk.delete("/api/desk/session", headers=li).status_code == 204
    assert desk.get("/api/desk/tasks", headers=li).status_code == 401
    with ledger_engine.connect() as conn:  # the database keeps no session token, and no password
        stored = conn.execute(select(schema.desk_sessions.c.session_hash)).scalars().all()
        hashes = conn.execute(select(schema.desk_users.c.password_hash)).scalars().all()
    assert li["Authorization"].split()[1] not in stored and all(h.startswith("$argon2id$") for h in hashes)
    assert log_rows(ledger_engine) == [("li.officer", "station:ZK01-PS01", "sign_in"),
                                       ("li.officer", "station:ZK01-PS01", "sign_out")]


def test_a_session_expires(ledger_engine):
    with ledger_engine.begin() as conn:
        add_user(conn, "li.officer", "station:ZK01-PS01", "officer", PASSWORD)
    with TestClient(create_app(Settings(desk_session_ttl_s=1), ledger_engine)) as client:
        li = signed_in(client, "li.officer")
        assert client.get("/api/desk/tasks", headers=li).status_code == 200
        time.sleep(1.2)
        assert client.get("/api/desk/tasks", headers=li).status_code == 401


def test_one_officer_takes_a_task_and_a_lead_hands_it_over(desk, ledger_engine):
    task = recorded(ledger_engine, desk_action(station="ZK01-PS01"))
    li, wang, lead = signed_in(desk, "li.officer"), signed_in(desk, "wang.officer"), signed_in(desk, "zhao.lead")
    assert desk.post(f"/api/desk/tasks/{task}/take", headers=li).json() == {"task_id": task, "assignee": "li.officer"}
    assert desk.post(f"/api/desk/tasks/{task}/take", headers=li).status_code == 200  # mine already
    refused = desk.post(f"/api/desk/tasks/{task}/take", headers=wang)
    assert refused.status_code == 409 and "li.officer has it" in refused.json()["detail"]
    assert desk.post(f"/api/desk/tasks/{task}/assign", headers=li, json={"user": "wang.officer"}).status_code == 403
    assert desk.post(f"/api/desk/tasks/{task}/assign", headers=lead, json={"user": "chen.other"}).status_code == 422
    assert desk.post(f"/api/desk/tasks/{task}/assign", headers=lead, json={"user": "wang.officer"}).status_code == 200
    [item] = [i for i in desk.get("/api/desk/tasks", headers=li).json()["items"] if i["task_id"] == task]
    assert item["assignee"] == "wang.officer"
    assert [r for r in log_rows(ledger_engine) if r[2].startswith("desk_")] == [
        ("li.officer", "station:ZK01-PS01", "desk_take"), ("zhao.lead", "station:ZK01-PS01", "desk_assign")]


def test_another_stations_officer_and_an_auditor_cannot_act(desk, ledger_engine):
    task = recorded(ledger_engine, desk_action(station="ZK01-PS01"))
    other, auditor = signed_in(desk, "chen.other"), signed_in(desk, "sun.auditor")
    assert task not in {i["task_id"] for i in desk.get("/api/desk/tasks", headers=other).json()["items"]}
    assert desk.get(f"/api/desk/tasks/{task}", headers=other).status_code == 404
    assert desk.post(f"/api/desk/tasks/{task}/take", headers=other).status_code == 404
    assert desk.post(f"/api/desk/tasks/{task}/outcome", headers=other, json={"finding": "dissuaded"}).status_code == 404
    assert task in {i["task_id"] for i in desk.get("/api/desk/tasks", headers=auditor).json()["items"]}
    assert desk.post(f"/api/desk/tasks/{task}/take", headers=auditor).status_code == 403
    assert desk.post(f"/api/desk/tasks/{task}/outcome", headers=auditor,
                     json={"finding": "dissuaded"}).status_code == 403
    # A unit token is a system, not a person: it records outcomes but takes nothing.
    assert desk.post(f"/api/desk/tasks/{task}/take", headers={"Authorization": "Bearer tok-a"}).status_code == 403


def test_only_the_assignee_sees_the_number_and_each_reveal_is_logged(desk, ledger_engine):
    task = recorded(ledger_engine, desk_action(Channel.hotline_call, tier=Tier.medium, priority=2))
    zhou, wu = signed_in(desk, "zhou.operator"), signed_in(desk, "wu.operator")
    assert desk.get(f"/api/desk/tasks/{task}", headers=zhou).json()["phone"] == mask(PHONE)
    assert desk.get(f"/api/desk/tasks/{task}?reveal=true", headers=zhou).status_code == 403  # not taken yet
    desk.post(f"/api/desk/tasks/{task}/take", headers=zhou)
    assert desk.get(f"/api/desk/tasks/{task}?reveal=true", headers=zhou).json()["phone"] == PHONE
    assert desk.get(f"/api/desk/tasks/{task}?reveal=true", headers=wu).status_code == 403
    assert desk.get(f"/api/desk/tasks/{task}", headers=wu).json()["phone"] == mask(PHONE)
    assert [r for r in log_rows(ledger_engine) if r[2] == "phone"] == [("zhou.operator", "hotline:96110", "phone")]


def test_a_user_needs_a_known_unit_a_role_and_a_long_password(ledger_engine):
    with ledger_engine.begin() as conn:
        for unit, role, password in (("bureau:X", "officer", PASSWORD), ("station:ZK01-PS01", "chief", PASSWORD),
                                     ("station:ZK01-PS01", "officer", "short")):
            with pytest.raises(ValueError):
                add_user(conn, "x", unit, role, password)
