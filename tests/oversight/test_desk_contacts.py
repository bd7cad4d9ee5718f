"""Earlier contacts with a task's resident (GET /api/desk/tasks/{id}/contacts), read from a real ledger
database: every outcome of that resident but the task's own, newest first, only for the task's unit."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from desk_data import desk_action, recorded
from fastapi.testclient import TestClient

from oversight.console import create_app
from oversight.records import RECORD_KINDS, decode
from oversight.writer import write_batch
from streams.contracts.actions import Action, DeskFinding, Outcome, Result
from streams.settings import Settings

TOKENS = {"tok-a": "station:ZK01-PS01", "tok-b": "station:ZK01-PS02"}


@pytest.fixture
def desk(ledger_engine):
    with TestClient(create_app(Settings(console_tokens=TOKENS), ledger_engine)) as client:
        yield client


def answered(action: Action, result: Result, minutes_ago: int, attempt: int = 1, **extra) -> Outcome:
    at = action.created_at - timedelta(minutes=minutes_ago)
    return Outcome(outcome_id=f"{action.action_id}:{attempt}", action_id=action.action_id, alert_id=action.alert_id,
                   person_id=action.person_id, channel=action.channel, result=result, started_at=at, finished_at=at,
                   attempt=attempt, **extra)


def in_ledger(engine, outcomes: list[Outcome]) -> None:
    with engine.begin() as conn:
        write_batch(conn, [decode(RECORD_KINDS["Outcome"], msgspec.json.encode(o)) for o in outcomes])


def test_a_task_shows_the_residents_earlier_contacts_newest_first(desk, ledger_engine):
    action = desk_action()
    task = recorded(ledger_engine, action)
    earlier_visit = msgspec.structs.replace(action, action_id=f"{action.action_id}-earlier")
    stranger = msgspec.structs.replace(action, action_id="AL-other:1:police_visit:initial", person_id="P-someone-else")
    in_ledger(ledger_engine, [
        answered(earlier_visit, Result.refused, 90, finding=DeskFinding.refused, detail="desk: refused: not at home"),
        answered(earlier_visit, Result.unreachable, 120, attempt=2),
        answered(stranger, Result.dissuaded, 30),
        answered(action, Result.dissuaded, 0),  # the task's own outcome: not an earlier contact
    ])
    reply = desk.get(f"/api/desk/tasks/{task}/contacts", headers={"Authorization": "Bearer tok-a"})
    assert reply.status_code == 200, reply.text
    items = reply.json()["items"]
    assert [(c["result"], c["finding"], c["detail"]) for c in items] == [
        ("refused", "refused", "desk: refused: not at home"), ("unreachable", None, "")]
    assert items[0]["finished_at"] > items[1]["finished_at"] and items[0]["finished_at"].endswith("+00:00")

    other_station = desk.get(f"/api/desk/tasks/{task}/contacts", headers={"Authorization": "Bearer tok-b"})
    assert other_station.status_code == 404  # as if the task did not exist
    assert desk.get(f"/api/desk/tasks/{task}/contacts").status_code == 401
