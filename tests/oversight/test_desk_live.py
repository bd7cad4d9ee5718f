"""The live task list's long poll (GET /api/desk/changes) on a real ledger database: an answer at once
for a page that has no stamp or an old one, a wait that ends when the unit's open tasks change (a new
task, a take), and none for another unit's task."""

from __future__ import annotations

import threading
import time

import pytest
from desk_data import desk_action, recorded
from fastapi.testclient import TestClient

from oversight.console import create_app
from oversight.desk.people import add_user
from streams.settings import Settings

TOKENS = {"tok-a": "station:ZK01-PS01", "tok-b": "station:ZK01-PS02"}
A, B = {"Authorization": "Bearer tok-a"}, {"Authorization": "Bearer tok-b"}


@pytest.fixture
def desk(ledger_engine):
    with TestClient(create_app(Settings(console_tokens=TOKENS), ledger_engine)) as client:
        yield client


def stamp(desk, headers: dict, since: str = "", wait_s: float = 0) -> tuple[str, float]:
    started = time.monotonic()
    reply = desk.get("/api/desk/changes", params={"since": since, "wait_s": wait_s}, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()["stamp"], time.monotonic() - started


def later(seconds: float, do) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), do()))
    thread.start()
    return thread


def test_a_wait_ends_when_the_units_tasks_change_and_not_for_another_units(desk, ledger_engine):
    empty, took = stamp(desk, A, wait_s=5)
    assert took < 1  # no stamp yet: at once
    unchanged, took = stamp(desk, A, since=empty, wait_s=1)
    assert unchanged == empty and took >= 1  # nothing changed: the whole wait

    other = later(0.5, lambda: recorded(ledger_engine, desk_action(station="ZK01-PS02")))
    unchanged, took = stamp(desk, A, since=empty, wait_s=1.5)
    other.join()
    assert unchanged == empty and took >= 1.5  # another station's task is not this station's change

    mine = later(0.5, lambda: recorded(ledger_engine, desk_action()))
    new, took = stamp(desk, A, since=empty, wait_s=8)
    mine.join()
    assert new != empty and took < 2  # answered within a look or two of the new task
    assert stamp(desk, A, since="an old stamp")[0] == new  # a page with an old stamp: at once


def test_taking_a_task_is_a_change_and_the_wait_needs_a_caller(desk, ledger_engine):
    with ledger_engine.begin() as conn:
        add_user(conn, "chen.officer", "station:ZK01-PS02", "officer", "correct horse battery")
    session = desk.post("/api/desk/session", json={"user": "chen.officer", "password": "correct horse battery"})
    chen = {"Authorization": f"Bearer {session.json()['token']}"}
    task = recorded(ledger_engine, desk_action(station="ZK01-PS02"))
    before, _ = stamp(desk, chen)
    taken = later(0.5, lambda: desk.post(f"/api/desk/tasks/{task}/take", headers=chen))
    after, took = stamp(desk, chen, since=before, wait_s=8)
    taken.join()
    assert after != before and took < 2  # who has it changed: the list shows it
    assert desk.get("/api/desk/changes").status_code == 401
