"""The desk's API on the real broker and a real ledger database: one outcome on `outcomes` per task,
however it is posted (twice, by several at once, again after a timeout), and only by its unit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest
from desk_data import PHONE, desk_action, recorded
from fastapi.testclient import TestClient
from sqlalchemy import select

from oversight import schema
from oversight.console import create_app
from streams.contracts.actions import Channel, DeskFinding, Outcome, Result
from streams.contracts.alerts import Tier
from streams.contracts.common import Typology
from streams.masking import mask

TOKENS = {"tok-a": "station:ZK01-PS01", "tok-b": "station:ZK01-PS02", "tok-centre": "centre",
          "tok-zk01": "county:ZK01", "tok-zk02": "county:ZK02", "tok-hotline": "hotline:96110"}
QUIET_S = 3.0  # how long a test listens to prove that no second outcome comes


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def desk_settings(settings):
    return settings.model_copy(update={"console_tokens": TOKENS, "desk_produce_timeout_s": 2.0})


@pytest.fixture
def client(desk_settings, ledger_engine):
    with TestClient(create_app(desk_settings, ledger_engine)) as c:
        yield c


@pytest.fixture
def outcomes(catalog, consumer_factory):
    return consumer_factory(catalog.topic("outcomes").name)


def on_topic(reader, task_ids: set[str], wait_for: int) -> list[Outcome]:
    """Outcomes of these tasks: read until `wait_for` have come, then listen QUIET_S more for extras."""
    def mine(messages):
        return [o for o in (msgspec.json.decode(m.value(), type=Outcome) for m in messages) if o.outcome_id in task_ids]

    reader.read_until(lambda messages: len(mine(messages)) >= wait_for, timeout=30)
    return mine(reader.read_for(QUIET_S))


def dissuaded(client, task_id: str, token: str = "tok-a", finding: str = "dissuaded", **extra):
    return client.post(f"/api/desk/tasks/{task_id}/outcome", headers=auth(token),
                       json={"finding": finding, "note": "talked with her at the door", **extra})


def test_a_repeated_post_records_one_outcome(client, ledger_engine, outcomes):
    task = recorded(ledger_engine, desk_action())
    replies = [dissuaded(client, task) for _ in range(3)]
    assert [r.status_code for r in replies] == [201, 200, 200]
    assert [r.json()["recorded_now"] for r in replies] == [True, False, False]
    assert len({r.json()["outcome"]["finished_at"] for r in replies}) == 1  # the stored one, every time
    [outcome] = on_topic(outcomes, {task}, 1)
    assert (outcome.result, outcome.finding, outcome.channel) == (Result.dissuaded, DeskFinding.dissuaded,
                                                                  Channel.police_visit)
    assert outcome.detail == "desk: dissuaded: talked with her at the door"
    assert dissuaded(client, task, finding="refused").status_code == 409  # a different answer does not replace it
    with ledger_engine.connect() as conn:
        row = conn.execute(select(schema.desk_tasks).where(schema.desk_tasks.c.task_id == task)).mappings().one()
        writes = conn.execute(select(schema.access_log.c.unit, schema.access_log.c.field)
                              .where(schema.access_log.c.alert_id == row["alert_id"])).all()
    assert (row["state"], row["closed_by"]) == ("closed", "station:ZK01-PS01")
    assert writes == [("station:ZK01-PS01", "desk_outcome")]


def test_concurrent_posts_record_one_outcome(client, ledger_engine, outcomes):
    tasks = [recorded(ledger_engine, desk_action()) for _ in range(3)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: dissuaded(client, tasks[i % 3], token=("tok-a", "tok-centre")[i % 2]),
                                range(24)))
    by_task = {t: sorted(r.status_code for r in replies if r.json()["task_id"] == t) for t in tasks}
    assert all(codes == [200] * 7 + [201] for codes in by_task.values()), by_task
    found = on_topic(outcomes, set(tasks), 3)
    assert sorted(o.outcome_id for o in found) == sorted(tasks)


def test_a_retry_after_a_timeout_records_one_outcome(desk_settings, client, ledger_engine, outcomes):
    task = recorded(ledger_engine, desk_action())
    # The first post reaches a console whose broker does not answer: the outcome is stored, not produced.
    cut_off = desk_settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:9", "desk_produce_timeout_s": 0.5})
    with TestClient(create_app(cut_off, ledger_engine)) as lost:
        first = dissuaded(lost, task)
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    retry = dissuaded(client, task)  # waits out the lost request's lease, then produces the stored outcome
    assert (retry.status_code, retry.json()["recorded_now"]) == (201, True)
    assert dissuaded(client, task).status_code == 200
    [outcome] = on_topic(outcomes, {task}, 1)
    assert outcome.result is Result.dissuaded


def test_a_station_cannot_see_or_close_another_stations_task(client, ledger_engine, outcomes):
    ours = recorded(ledger_engine, desk_action(station="ZK01-PS01"))
    theirs = recorded(ledger_engine, desk_action(station="ZK01-PS02"))
    call = recorded(ledger_engine, desk_action(Channel.hotline_call, tier=Tier.medium, priority=2))

    def listed(token: str) -> set[str]:
        reply = client.get("/api/desk/tasks", headers=auth(token))
        assert reply.status_code == 200
        return {i["task_id"] for i in reply.json()["items"]} & {ours, theirs, call}

    assert listed("tok-a") == {ours}
    assert listed("tok-b") == {theirs}
    assert listed("tok-zk01") == {ours, theirs}  # the county bureau oversees its stations' visits
    assert listed("tok-zk02") == set()
    assert listed("tok-hotline") == {call}
    assert listed("tok-centre") == {ours, theirs, call}
    refused = dissuaded(client, theirs, token="tok-a")
    assert refused.status_code == 404
    assert dissuaded(client, call, token="tok-a").status_code == 404
    assert client.get("/api/alerts", headers=auth("tok-hotline")).status_code == 403  # the desk only
    assert client.get("/api/desk/tasks").status_code == 401
    assert dissuaded(client, ours).status_code == 201
    assert [o.outcome_id for o in on_topic(outcomes, {ours, theirs, call}, 1)] == [ours]


def test_money_already_sent_carries_the_amount_and_is_not_a_dissuasion(client, ledger_engine, outcomes):
    task = recorded(ledger_engine, desk_action())
    assert dissuaded(client, task, finding="money_already_sent").status_code == 422  # the amount is required
    assert dissuaded(client, task, finding="false_alarm", amount_sent="10.00").status_code == 422
    reply = dissuaded(client, task, finding="money_already_sent", amount_sent="49800.5")
    assert reply.status_code == 201
    [outcome] = on_topic(outcomes, {task}, 1)
    assert (outcome.result, outcome.finding, outcome.amount_sent) == (Result.refused, DeskFinding.money_already_sent,
                                                                      Decimal("49800.50"))


def test_the_list_puts_funds_warnings_first_then_priority_then_deadline(client, ledger_engine):
    later = recorded(ledger_engine, desk_action(tier=Tier.high, priority=1, deadline_in=timedelta(minutes=50)))
    sooner = recorded(ledger_engine, desk_action(tier=Tier.high, priority=1, deadline_in=timedelta(minutes=20)))
    funds = recorded(ledger_engine, desk_action(tier=Tier.funds_warning, priority=0,
                                                deadline_in=timedelta(minutes=55)))
    call = recorded(ledger_engine, desk_action(Channel.hotline_call, tier=Tier.medium, priority=2))
    body = client.get("/api/desk/tasks", headers=auth("tok-centre")).json()
    order = [i["task_id"] for i in body["items"] if i["task_id"] in {later, sooner, funds, call}]
    assert order == [funds, sooner, later, call]
    item = next(i for i in body["items"] if i["task_id"] == call)
    assert item["phone"] == mask(PHONE) and item["held_by"] == "hotline:96110"
    assert item["warning_type"] == "impersonate_police" and 0 < item["seconds_left"] <= 1800
    assert body["funds_warnings"] >= 1


def test_a_task_carries_the_script_for_its_warning_type(client, ledger_engine):
    romance = recorded(ledger_engine, desk_action(typology=Typology.romance))
    unknown = recorded(ledger_engine, desk_action(typology=Typology.unknown))
    shown = {t: client.get(f"/api/desk/tasks/{t}", headers=auth("tok-a")).json()["script"] for t in (romance, unknown)}
    assert shown[romance]["warning_type"] == shown[romance]["name"] == "romance"
    assert "<h1>杀猪盘" in shown[romance]["html"] and shown[romance]["version"]
    assert (shown[unknown]["warning_type"], shown[unknown]["name"]) == ("unknown", "generic")
    listed = client.get("/api/desk/scripts", headers=auth("tok-centre")).json()["items"]
    assert {i["warning_type"]: i["version"] for i in listed}["romance"] == shown[romance]["version"]
    assert {i["warning_type"] for i in listed} == {t.value for t in Typology}
    assert client.get("/api/desk/scripts").status_code == 401
