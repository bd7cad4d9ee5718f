"""Claims, limits and the held set, on the real embedded Valkey (times are passed in, not waited for)."""

import time
import uuid
from datetime import UTC, datetime

import pytest
from channel_helpers import make_action

from channels.claims import ClaimState, ClaimStore
from channels.held import HeldAction, HeldStore
from channels.limits import FrequencyCap, RateLimiter
from channels.policy import ContactPolicy, Policy
from streams.contracts.actions import Channel, Outcome, Result
from streams.contracts.alerts import Tier
from streams.valkey import sync_client


@pytest.fixture
def valkey(settings):
    client = sync_client(settings)
    yield client
    client.close()


def _outcome(oid: str, result: Result) -> Outcome:
    now = datetime.now(UTC)
    return Outcome(outcome_id=oid, action_id=oid, alert_id="al", person_id="p", channel=Channel.sms,
                   result=result, started_at=now, finished_at=now)


# ----------------------------------------------------------------------------------- claims
def test_only_the_first_claim_may_send_and_the_stored_outcome_is_returned(valkey):
    claims, oid = ClaimStore(valkey, 60), f"a-{uuid.uuid4().hex}:1"
    ours, claim = claims.claim(oid, "worker-a", 100.0)
    assert ours and claim.record.state is ClaimState.sending
    again, existing = claims.claim(oid, "worker-b", 101.0)
    assert not again and existing.record.owner == "worker-a"
    delivered = _outcome(oid, Result.delivered)
    assert claims.finish(oid, claim, delivered) == delivered
    stored = claims.get(oid)
    assert stored.record.state is ClaimState.done and stored.record.outcome == delivered
    assert 0 < valkey.ttl(f"claim:{oid}") <= 60


def test_when_a_finish_races_an_interrupted_verdict_exactly_one_outcome_stands(valkey):
    claims, oid = ClaimStore(valkey, 60), f"a-{uuid.uuid4().hex}:1"
    _, sending = claims.claim(oid, "worker-a", 100.0)
    interrupted = _outcome(oid, Result.failed)
    assert claims.finish(oid, sending, interrupted) == interrupted  # the rescuer wins the compare-and-set
    late = _outcome(oid, Result.delivered)
    assert claims.finish(oid, sending, late) == interrupted  # the original sender gets the winner back


# ----------------------------------------------------------------------------------- limits
def test_frequency_cap_holds_beyond_the_cap_until_the_oldest_contact_leaves_the_window(valkey):
    cap, person = FrequencyCap(valkey, 2, 60), f"p-{uuid.uuid4().hex}"
    assert cap.reserve(person, "a:1", 1000.0, enforce=True) is None
    assert cap.reserve(person, "b:1", 1010.0, enforce=True) is None
    assert cap.reserve(person, "c:1", 1020.0, enforce=True) == pytest.approx(1060.0)
    assert cap.reserve(person, "a:1", 1030.0, enforce=True) is None, "asking again keeps its own place"
    assert cap.reserve(person, "c:1", 1061.0, enforce=True) is None, "a place freed when a:1 left the window"


def test_urgent_contacts_are_never_capped_but_still_count(valkey):
    cap, person = FrequencyCap(valkey, 1, 60), f"p-{uuid.uuid4().hex}"
    assert cap.reserve(person, "visit:1", 1000.0, enforce=False) is None
    assert cap.reserve(person, "visit:2", 1001.0, enforce=False) is None
    assert cap.reserve(person, "sms:1", 1002.0, enforce=True) is not None


def test_rate_limit_allows_a_second_of_burst_then_spaces_slots(valkey):
    limiter = RateLimiter(valkey, f"test-{uuid.uuid4().hex}", per_second=2.0)
    now = time.time()  # the key expires relative to this, so it must be near real time
    slots = [limiter.reserve(now) - now for _ in range(5)]
    assert slots == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5], abs=1e-3)


def test_policy_checks_quiet_hours_before_reserving_anything(valkey, settings):
    policy_settings = settings.model_copy(update={
        "channel_quiet_hours": "00:00-23:59:59", "contact_frequency_cap": 1, "channel_rate_limits": {"sms": 1.0}})
    policy = ContactPolicy(policy_settings, Channel.sms, valkey)
    action = make_action(Channel.sms, Tier.low)
    hold = policy.decide(action, "x:1", time.time())
    assert hold.policy is Policy.quiet_hours and not hold.rate_reserved
    assert valkey.zcard(f"contacts:{action.person_id}") == 0, "a quiet-hours hold takes no place in the cap"
    urgent = make_action(Channel.sms, Tier.funds_warning, person_id=action.person_id)
    assert policy.decide(urgent, "y:1", time.time()) is None
    assert policy.decide(make_action(Channel.sms, Tier.low, person_id=action.person_id), "z:1",
                         time.time()).policy is Policy.quiet_hours


def test_policy_rate_hold_reserves_the_slot(valkey, settings):
    channel_settings = settings.model_copy(update={
        "channel_quiet_hours": "", "contact_frequency_cap": 0, "channel_rate_limits": {"police_visit": 1.0}})
    policy = ContactPolicy(channel_settings, Channel.police_visit, valkey)
    valkey.delete("rate:police_visit")
    now = time.time()
    assert policy.decide(make_action(Channel.police_visit), "a:1", now) is None
    hold = policy.decide(make_action(Channel.police_visit), "b:1", now)
    assert hold.policy is Policy.rate_limit and hold.rate_reserved and hold.until == pytest.approx(now + 1.0)
    assert policy.decide(make_action(Channel.police_visit), "b:1", hold.until, rate_reserved=True) is None


# ---------------------------------------------------------------------------------- held set
def test_held_actions_are_kept_once_leased_to_one_taker_and_removed_when_done(valkey):
    held = HeldStore(valkey, f"test.{uuid.uuid4().hex}", lease_s=30)
    record = HeldAction(action=b'{"x":1}', policy="quiet_hours", release_at=1000.0, held_at=990.0, source="t:0:5")
    assert held.hold_new("a:1", record)
    assert not held.hold_new("a:1", record), "a replay of a held action is not held twice"
    assert held.take_due(999.0, 10) == []
    assert held.take_due(1000.0, 10) == [("a:1", record)]
    assert held.take_due(1001.0, 10) == [], "leased: another worker does not take it too"
    assert held.take_due(1031.0, 10) == [("a:1", record)], "the lease ran out (its taker died): due again"
    assert held.peek() == (1, pytest.approx(1031.0 + 30))
    held.remove("a:1")
    assert held.peek() == (0, None)
