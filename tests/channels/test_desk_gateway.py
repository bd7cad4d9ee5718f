"""The desk gateway in a real channel worker (real broker, Valkey and a ledger database): a police
visit or hotline call becomes one task held by its unit and no outcome; a hotline task nobody
answers by its deadline comes back as not reached, and escalation treats that as it treats an
unanswered simulated call."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from channel_helpers import ThreadWorker, produce_actions, wait_for
from sqlalchemy import func, select

from channels.claims import ClaimState, ClaimStore
from dissuasion_builders import alert, new_person, now, outcome
from oversight import schema
from oversight.db import migrate
from oversight.desk.closing import Closer
from oversight.desk.outcomes import NotTaken
from oversight.desk.tasks import holder_of, record_task
from streams.alert_state import PersonState
from streams.contracts.actions import Channel, Outcome, Result, Target
from streams.contracts.alerts import Jurisdiction, Tier
from streams.escalation import Rules
from streams.routing import get_partners, get_routing
from streams.valkey import sync_client

QUIET_S = 3.0


@pytest.fixture
def desk_settings(settings, tmp_path):
    return settings.model_copy(update={
        "database_url": f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "desk_channels": ["police_visit", "hotline_call"],
        "channel_quiet_hours": "", "contact_frequency_cap": 0, "channel_rate_limits": {}, "channel_poll_s": 0.2,
        "desk_produce_timeout_s": 0.5,  # a stranded post's lease: 1 s
    })


@pytest.fixture
def engine(desk_settings):
    engine = migrate(desk_settings)
    yield engine
    engine.dispose()


@pytest.fixture
def workers():
    started: list[ThreadWorker] = []

    def start(*args, **kwargs) -> ThreadWorker:
        started.append(ThreadWorker(*args, **kwargs))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def tasks(engine, action_ids: set[str]) -> list[dict]:
    t = schema.desk_tasks
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).where(t.c.action_id.in_(action_ids))).mappings()]


def outcomes_for(reader, outcome_ids: set[str], wait_for_count: int) -> list[Outcome]:
    def mine(messages):
        return [o for o in (msgspec.json.decode(m.value(), type=Outcome) for m in messages)
                if o.outcome_id in outcome_ids]

    if wait_for_count:
        reader.read_until(lambda messages: len(mine(messages)) >= wait_for_count, timeout=30)
    return mine(reader.read_for(QUIET_S))


def visit(tier: Tier, station: str, county: str = "ZK01", deadline_in: timedelta = timedelta(minutes=30)):
    """A visit routed as escalation plans it: the alert's rule for the tier, through the real rules."""
    rules = Rules(get_routing(), get_partners())
    state = PersonState(partition=0)
    a = alert(new_person(), tier, jurisdiction=Jurisdiction(county, station, f"{station}-G01"),
              at=now() - timedelta(minutes=30) + deadline_in)
    rules.on_alert(state, a)
    return next(t.action for t in state.alerts[a.alert_id].actions.values() if t.action.channel is Channel.police_visit)


def test_a_visit_becomes_one_task_of_its_station_and_no_outcome(desk_settings, engine, producer, topic_factory,
                                                                 catalog, consumer_factory, workers):
    topic = topic_factory(partitions=2)
    first, second = visit(Tier.funds_warning, "ZK01-PS01"), visit(Tier.high, "ZK01-PS02")
    reader = consumer_factory(catalog.topic("outcomes").name)
    produce_actions(producer, topic, [first, second, first])  # the repeat: a redelivery, a replay
    workers(desk_settings, Channel.police_visit, topic)
    ids = {first.action_id, second.action_id}
    wait_for(lambda: len(tasks(engine, ids)) == 2, 30, "two tasks")
    by_action = {t["action_id"]: t for t in tasks(engine, ids)}
    assert (by_action[first.action_id]["holder_role"], by_action[first.action_id]["holder_code"]) == (
        "station", "ZK01-PS01")
    assert by_action[first.action_id]["task_id"] == f"{first.action_id}:1"
    assert (by_action[second.action_id]["tier"], by_action[second.action_id]["priority"]) == ("high", 1)
    assert outcomes_for(reader, {f"{a}:1" for a in ids}, 0) == []  # the desk answers, later
    claims = ClaimStore(sync_client(desk_settings), desk_settings.channel_claim_ttl_s)
    assert claims.get(f"{first.action_id}:1").record.state is ClaimState.handed
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.desk_tasks)
                            .where(schema.desk_tasks.c.action_id.in_(ids))).scalar_one() == 2


def test_a_visit_to_a_duty_desk_is_held_by_its_county_or_the_centre():
    desks = get_routing().duty_desks
    county_desk = visit(Tier.high, "unknown", county="ZK03")
    assert county_desk.target.station == desks.counties["ZK03"]
    assert holder_of(county_desk, desks, "96110").name == "county:ZK03"
    centre = msgspec.structs.replace(county_desk, target=Target(station=desks.city_centre))
    assert holder_of(centre, desks, "96110").name == "centre"
    call = msgspec.structs.replace(county_desk, channel=Channel.hotline_call, target=Target(phone="+8613800000001"))
    assert holder_of(call, desks, "96110").name == "hotline:96110"


def test_an_unanswered_hotline_task_escalates_like_an_unanswered_simulated_call(
        desk_settings, engine, producer, topic_factory, catalog, consumer_factory, workers):
    rules = Rules(get_routing(), get_partners())
    desk_state, simulated_state = PersonState(partition=0), PersonState(partition=0)
    person = new_person()
    late = now() - timedelta(hours=1)  # the medium alert's hotline SLA (30 min) has passed
    for state in (desk_state, simulated_state):
        rules.on_alert(state, alert(person, Tier.medium, at=late))
    [case] = desk_state.alerts.values()
    call = next(t.action for t in case.actions.values() if t.action.channel is Channel.hotline_call)
    assert call.deadline < now()
    # The alert's push did not reach the person either, so the hotline call is the tier's last chance.
    push = next(t.action for t in case.actions.values() if t.action.channel is Channel.app_push)
    for state in (desk_state, simulated_state):
        rules.on_outcome(state, outcome(push, Result.unreachable), now())
    topic = topic_factory()
    reader = consumer_factory(catalog.topic("outcomes").name)
    workers(desk_settings, Channel.hotline_call, topic)

    for attempt in (1, 2):
        produce_actions(producer, topic, [call])
        task_id = f"{call.action_id}:{attempt}"
        [unanswered] = outcomes_for(reader, {task_id}, 1)  # one, though the sweep runs every second
        assert (unanswered.result, unanswered.attempt, unanswered.finding) == (Result.unreachable, attempt, None)
        [task] = [t for t in tasks(engine, {call.action_id}) if t["task_id"] == task_id]
        assert (task["state"], task["closed_by"], task["holder_code"]) == ("closed", "desk:deadline", "96110")
        by_desk = rules.on_outcome(desk_state, unanswered, now())
        by_simulator = rules.on_outcome(simulated_state, outcome(call, Result.unreachable, attempt=attempt), now())
        assert [(p.action.action_id, p.action.channel, p.action.attempt) for p in by_desk.actions] == [
            (p.action.action_id, p.action.channel, p.action.attempt) for p in by_simulator.actions]
        assert [(e.reason, e.to_tier) for e in by_desk.escalations] == [
            (e.reason, e.to_tier) for e in by_simulator.escalations]
        if attempt == 1:
            [retry] = by_desk.actions  # tried again, as hotline calls are (attempts: 2)
            assert (retry.action.channel, retry.action.attempt) == (Channel.hotline_call, 2)
            call = retry.action
    # The second unanswered call used the tier's last attempt: on to the next tier, as for the simulated call.
    assert [(e.reason.value, e.to_tier) for e in by_desk.escalations] == [("unreachable", Tier.high)]
    assert sorted(p.action.channel.value for p in by_desk.actions) == ["line_suspension", "police_visit"]
    assert desk_state.alerts[case.alert.alert_id].tier is simulated_state.alerts[case.alert.alert_id].tier is Tier.high


def test_a_post_that_died_before_kafka_had_its_outcome_is_finished_by_the_worker(
        desk_settings, engine, producer, topic_factory, catalog, consumer_factory, workers):
    action = visit(Tier.funds_warning, "ZK01-PS01")
    task_id = f"{action.action_id}:1"
    with engine.begin() as conn:
        record_task(conn, action, task_id, holder_of(action, get_routing().duty_desks, "96110"), now())

    def lost(_outcome):
        raise NotTaken("the console died here")

    posted = outcome(action, Result.dissuaded)
    with pytest.raises(NotTaken):
        Closer(engine, lost, 1.0).close(task_id, posted, "station:ZK01-PS01")
    reader = consumer_factory(catalog.topic("outcomes").name)
    workers(desk_settings, Channel.police_visit, topic_factory())  # nobody posts again: the sweep finishes it
    [finished] = outcomes_for(reader, {task_id}, 1)
    assert finished == posted  # the stored outcome, not a new one
    [task] = tasks(engine, {action.action_id})
    assert (task["state"], task["closed_by"]) == ("closed", "station:ZK01-PS01")
