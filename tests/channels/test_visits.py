"""One officer at the door (channels.visits): which visit goes, which one a visit under way carries.

The rule is pure (`decide`) and tested first; the record it keeps is tested on the real
embedded Valkey; the worker that applies both is in test_channel_worker.py.
"""

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from channel_helpers import make_action

from channels.claims import ClaimRecord, ClaimState
from channels.visits import SUPERVISOR_REASON, Verdict, VisitRecord, VisitStore, carried_outcome, decide
from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.contracts.alerts import Tier
from streams.valkey import sync_client

LEASE_S = 120.0
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def visit(person: str, tier: Tier, created_at: datetime, **changes) -> Action:
    action = make_action(Channel.police_visit, tier, person_id=person)
    return msgspec.structs.replace(action, created_at=created_at, **changes)


def outcome_of(action: Action, result: Result, started: datetime, finished: datetime) -> Outcome:
    return Outcome(outcome_id=f"{action.action_id}:{action.attempt}", action_id=action.action_id,
                   alert_id=action.alert_id, person_id=action.person_id, channel=action.channel, result=result,
                   started_at=started, finished_at=finished, attempt=action.attempt,
                   detail="the person agreed to stop and not transfer")


def sending(since: datetime) -> ClaimRecord:
    return ClaimRecord(ClaimState.sending, "worker-a", since.timestamp())


def done(outcome: Outcome) -> ClaimRecord:
    return ClaimRecord(ClaimState.done, "worker-a", outcome.started_at.timestamp(), outcome)


# ------------------------------------------------------------------------------ the rule
def test_a_high_alert_raised_while_the_funds_warning_visit_is_under_way_waits_for_it_then_rides_on_it():
    person = "p-fw-then-high"
    emergency = visit(person, Tier.funds_warning, T0)
    high = visit(person, Tier.high, T0 + timedelta(seconds=20))
    holder = VisitRecord(oid=f"{emergency.action_id}:1", alert_id=emergency.alert_id)
    now = (T0 + timedelta(seconds=30)).timestamp()
    assert decide(high, holder, sending(T0), now, LEASE_S) is Verdict.wait
    reported = outcome_of(emergency, Result.dissuaded, T0, T0 + timedelta(seconds=60))
    assert decide(high, holder, done(reported), now + 40, LEASE_S) is Verdict.carried
    # Read only after the visit ended (one officer at a time): it was raised while the officer was out.
    assert decide(high, holder, done(reported), now + 3600, LEASE_S) is Verdict.carried


def test_an_alert_raised_after_the_visit_ended_gets_a_visit_of_its_own():
    person = "p-after"
    high = visit(person, Tier.high, T0)
    holder = VisitRecord(oid=f"{high.action_id}:1", alert_id=high.alert_id)
    reported = outcome_of(high, Result.dissuaded, T0, T0 + timedelta(minutes=20))
    later = visit(person, Tier.funds_warning, T0 + timedelta(minutes=21))
    assert decide(later, holder, done(reported), (T0 + timedelta(minutes=21)).timestamp(), LEASE_S) is Verdict.take
    # An escalation planned from that visit's outcome (a refusal) is dated when it ended: a visit of its own.
    escalated = visit(person, Tier.funds_warning, reported.finished_at, reason="escalation:refused")
    assert decide(escalated, holder, done(reported), (T0 + timedelta(minutes=21)).timestamp(), LEASE_S) is Verdict.take


def test_nobody_at_the_door_a_stale_record_or_an_interrupted_visit_lets_the_visit_go():
    person = "p-free"
    high = visit(person, Tier.high, T0)
    now = (T0 + timedelta(minutes=1)).timestamp()
    assert decide(high, None, None, now, LEASE_S) is Verdict.take
    other = VisitRecord(oid="gone:1", alert_id="AL-other")
    assert decide(high, other, None, now, LEASE_S) is Verdict.take  # its claim expired
    # A visit still `sending` after the lease belonged to a worker that died: nobody knows whether
    # the officer got there, so the new alert is not left to it.
    assert decide(high, other, sending(T0 - timedelta(seconds=LEASE_S + 1)), now, LEASE_S) is Verdict.take


@pytest.mark.parametrize("same_alert", [True, False], ids=["retry of the same alert", "supervisor visit"])
def test_a_retry_or_a_supervisor_visit_is_never_carried(same_alert):
    person = "p-own"
    first = visit(person, Tier.high, T0)
    holder = VisitRecord(oid=f"{first.action_id}:1", alert_id=first.alert_id)
    if same_alert:
        again = msgspec.structs.replace(first, attempt=2, created_at=T0 + timedelta(minutes=1))
    else:
        again = visit(person, Tier.funds_warning, T0 + timedelta(minutes=1), reason=SUPERVISOR_REASON)
    now = (T0 + timedelta(minutes=1)).timestamp()
    assert decide(again, holder, sending(T0), now, LEASE_S) is Verdict.alone  # sent beside the visit under way
    reported = outcome_of(first, Result.unreachable, T0, T0 + timedelta(minutes=5))
    assert decide(again, holder, done(reported), now + 600, LEASE_S) is Verdict.take


def test_the_carried_visit_has_its_own_outcome_with_the_visits_result_naming_that_visit():
    person = "p-carried"
    emergency = visit(person, Tier.funds_warning, T0)
    high = visit(person, Tier.high, T0 + timedelta(seconds=5))
    reported = outcome_of(emergency, Result.refused, T0, T0 + timedelta(minutes=12))
    carried = carried_outcome(high, f"{high.action_id}:1", reported)
    assert (carried.outcome_id, carried.action_id, carried.alert_id, carried.attempt) == (
        f"{high.action_id}:1", high.action_id, high.alert_id, 1)
    assert (carried.result, carried.started_at, carried.finished_at) == (Result.refused, T0, reported.finished_at)
    assert carried.detail.startswith(f"carried by the visit for alert {emergency.alert_id} ({reported.outcome_id})")


# ------------------------------------------------------------------ the record, in Valkey
@pytest.fixture
def visits(settings):
    client = sync_client(settings)
    yield VisitStore(client, 60)
    client.close()


def test_the_record_is_taken_once_and_only_over_what_the_taker_saw(visits):
    person = f"p-{uuid.uuid4().hex[:8]}"
    assert visits.get(person) is None
    first, second = VisitRecord("a:1", "AL-1"), VisitRecord("b:1", "AL-2")
    assert visits.take(person, first, None)
    assert not visits.take(person, second, None)  # both saw nobody: only one goes to the door
    seen = visits.get(person)
    assert seen.record == first
    third = VisitRecord("c:1", "AL-3")
    assert visits.take(person, second, seen)  # over a record it looked at (its visit had ended)
    assert not visits.take(person, third, seen)  # the same stale look cannot take it twice
    assert visits.get(person).record == second
    assert 0 < visits.client.ttl(f"visit:{person}") <= 60
