"""The simulator's desk staff works tasks through the desk's HTTP API (the console app on a real
ledger database, outcomes on the real broker): signed in as a user of each holding unit, it takes
each task and records the result the simulated gateway would have given for the same attempt; the
person's unit waits for the person first, and a task a person took is left to them."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from channels.gateways.simulated import simulate_contact, synthetic_age_band
from dissuasion_builders import alert, new_person, planned_visit
from oversight import schema
from oversight.console import create_app
from oversight.db import migrate
from oversight.desk import people
from oversight.desk.tasks import holder_of, record_task
from simulator.desk_worker import HUMAN_FIRST_S, DeskStaff, plan_for
from streams.contracts.actions import DESK_RESULTS, Channel, Outcome, Result
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import Typology
from streams.dissuasion import plan_for_alert
from streams.routing import get_partners, get_routing

PERSON_UNIT = "station:ZK01-PS01"
QUIET_S = 3.0


def gateway_result(channel: str, typology: str, alert_id: str, task_id: str, seed: int) -> Result:
    """What the simulated gateway answers for this attempt; a failed gateway call is nobody reached."""
    reply, _ = simulate_contact(Channel(channel), Typology(typology), synthetic_age_band(alert_id), task_id, seed)
    return Result.unreachable if reply.result is Result.failed else reply.result


def test_the_staff_records_what_the_simulated_gateway_would_have_answered():
    rng = random.Random(7)
    for n in range(2000):
        channel = rng.choice(["police_visit", "hotline_call"])
        task = {"task_id": f"AL-{n}:1:{channel}:initial:1", "alert_id": f"AL-{n}", "channel": channel,
                "warning_type": rng.choice(list(Typology)).value, "held_by": "station:ZK01-PS02"}
        plan = plan_for(task, 11, 1.0, 0.0, rng, frozenset({PERSON_UNIT}))
        assert DESK_RESULTS[plan.finding] == gateway_result(channel, task["warning_type"], task["alert_id"],
                                                             task["task_id"], 11)
        assert (plan.amount_sent is not None) == (plan.finding.value == "money_already_sent")
        assert plan.take_at <= 3.0  # picked up within seconds, well inside every SLA


def actions_at(station: str) -> list:
    """A funds-warning visit and a medium alert's hotline call, as route plans them."""
    where = Jurisdiction("ZK01", station, f"{station}-G01")
    visit = planned_visit(alert(new_person(), Tier.funds_warning, jurisdiction=where))
    _, planned = plan_for_alert(alert(new_person(), Tier.medium, jurisdiction=where), get_routing(), get_partners())
    call = next(p.action for p in planned if p.action.channel is Channel.hotline_call)
    return [visit, call]


@pytest.fixture
def engine(settings, tmp_path):
    engine = migrate(settings, f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    yield engine
    engine.dispose()


def test_the_staff_works_each_unit_s_tasks_through_the_api(settings, engine, catalog, consumer_factory):
    desk_settings = settings.model_copy(update={"gateway_simulated_time_scale": 0.0, "desk_produce_timeout_s": 5.0})
    worked = actions_at("ZK01-PS02")
    [person_waits, person_took] = [planned_visit(alert(new_person(), Tier.high, jurisdiction=Jurisdiction(
        "ZK01", "ZK01-PS01", "ZK01-PS01-G01"))) for _ in range(2)]
    every = [*worked, person_waits, person_took]
    with engine.begin() as conn:
        for action in every:
            record_task(conn, action, f"{action.action_id}:1", holder_of(action, get_routing().duty_desks, "96110"),
                        datetime.now(UTC))
        people.add_user(conn, "li.wei", PERSON_UNIT, "officer", "correct horse battery")
    reader = consumer_factory(catalog.topic("outcomes").name)
    with TestClient(create_app(desk_settings, engine)) as client:
        token = client.post("/api/desk/session", json={"user": "li.wei", "password": "correct horse battery"}
                            ).json()["token"]
        assert client.post(f"/api/desk/tasks/{person_took.action_id}:1/take",
                           headers={"Authorization": f"Bearer {token}"}).status_code == 200
        staff = DeskStaff(desk_settings, engine, client, frozenset({PERSON_UNIT}))
        assert staff.step(now=0.0) == 0  # planned and taken
        assert staff.step(now=0.1) == 2  # recorded: the other station's visit, the hotline's call
        assert staff.step(now=HUMAN_FIRST_S - 1) == 0  # the person's unit: still waiting for the person
        staff.step(now=HUMAN_FIRST_S + 1)
        assert staff.step(now=HUMAN_FIRST_S + 2) == 1  # then a simulated colleague takes it

    ids = {f"{a.action_id}:1": a for a in every}
    reader.read_until(lambda ms: len([m for m in ms if _outcome(m).outcome_id in ids]) >= 3, timeout=30)
    got = {o.outcome_id: o for o in map(_outcome, reader.read_for(QUIET_S)) if o.outcome_id in ids}
    assert set(got) == {f"{a.action_id}:1" for a in [*worked, person_waits]}  # one each; the person's is theirs
    for task_id, o in got.items():
        action = ids[task_id]
        assert o.result == gateway_result(action.channel.value, action.typology.value, action.alert_id, task_id,
                                          desk_settings.gateway_simulated_seed)
        assert o.finding is not None and o.detail.startswith("desk: ")
    with engine.connect() as conn:
        t, log = schema.desk_tasks, schema.access_log
        states = dict(conn.execute(select(t.c.task_id, t.c.state)).all())
        assert states[f"{person_took.action_id}:1"] == "open"
        writes = set(conn.execute(select(log.c.actor, log.c.field).where(log.c.field.in_(["desk_take", "desk_outcome"]))))
    assert writes == {("li.wei", "desk_take"), ("sim.station.ZK01-PS02", "desk_take"),
                      ("sim.station.ZK01-PS02", "desk_outcome"), ("sim.hotline.96110", "desk_take"),
                      ("sim.hotline.96110", "desk_outcome"), ("sim.station.ZK01-PS01", "desk_take"),
                      ("sim.station.ZK01-PS01", "desk_outcome")}


def _outcome(message) -> Outcome:
    return msgspec.json.decode(message.value(), type=Outcome)
