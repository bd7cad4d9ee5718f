"""The escalation rules (streams.escalation), one rule per test, without Kafka: pure state in, effects out.

Every state a test builds is also checked against the timer's index: `next_due` must be the
first moment `due` finds anything in it (CheckedRules).
"""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest

from channels.visits import carried_outcome
from dissuasion_builders import alert, new_person, now, outcome, transfer
from streams.alert_state import DueIndex, PersonState, closed_tally
from streams.contracts.actions import Channel, Result
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.dissuasion import (
    AckStatus,
    BankAck,
    BankReasonCode,
    DueKind,
    EscalationReason,
    RejectReason,
    RequestKind,
    TimerDue,
)
from streams.escalation import Rules
from streams.routing import get_partners, get_routing

ROUTING = get_routing()
BEFORE = [timedelta(microseconds=1), timedelta(seconds=1), timedelta(hours=1), timedelta(days=1), timedelta(days=30)]
AFTER = [timedelta(0), timedelta(microseconds=1), timedelta(hours=1), timedelta(days=30)]


def assert_next_due_is_the_first_finding(rules: Rules, state: PersonState) -> None:
    """`due` finds nothing before `next_due` and something from it on (state unchanged); never anything if None."""
    due = functools.partial(Rules.due, rules, "P-probe", state)  # Rules.due: not CheckedRules.due, which calls this
    first = Rules.next_due(rules, state)
    if first is None:
        assert all(due(now() + d) == [] for d in AFTER + [timedelta(days=3650)])
        return
    assert all(due(first - d) == [] for d in BEFORE), f"due finds something before next_due {first}"
    assert now() >= first or due(now()) == []
    assert all(due(first + d) for d in AFTER), f"due finds nothing at or after next_due {first}"


def _checking(method):
    @functools.wraps(method)
    def checked(self, state, *args, **kwargs):
        result = method(self, state, *args, **kwargs)
        assert_next_due_is_the_first_finding(self, state)
        return result

    return checked


class CheckedRules(Rules):
    """The rules, checking next_due against due on every state a handler leaves and every state `due` sees."""

    on_alert = _checking(Rules.on_alert)
    hold = _checking(Rules.hold)
    on_outcome = _checking(Rules.on_outcome)
    on_transfer = _checking(Rules.on_transfer)
    on_due = _checking(Rules.on_due)
    on_bank_ack = _checking(Rules.on_bank_ack)
    on_carrier_ack = _checking(Rules.on_carrier_ack)

    def due(self, person_id, state, now):
        assert_next_due_is_the_first_finding(self, state)
        return super().due(person_id, state, now)


@pytest.fixture
def rules() -> Rules:
    return CheckedRules(ROUTING, get_partners())


def opened(rules: Rules, tier: Tier, **kw):
    person = new_person()
    state = PersonState(partition=0)
    a = alert(person, tier, **kw)
    rules.on_alert(state, a)
    return state, state.alerts[a.alert_id]


def action_on(case, channel: Channel, tier: Tier | None = None):
    return next(t.action for t in case.actions.values()
                if t.action.channel is channel and (tier is None or t.action.tier is tier))


def test_not_reached_retries_then_escalates_to_the_next_tier(rules):
    state, case = opened(rules, Tier.low)
    sms, voice = action_on(case, Channel.sms), action_on(case, Channel.ai_voice)
    assert rules.on_outcome(state, outcome(sms, Result.unreachable), now()).actions == []  # one attempt only
    retry = rules.on_outcome(state, outcome(voice, Result.unreachable), now()).actions
    assert [(p.action.action_id, p.action.attempt) for p in retry] == [(voice.action_id, 2)]
    effects = rules.on_outcome(state, outcome(voice, Result.unreachable, attempt=2), now())
    assert {p.action.channel for p in effects.actions} == {Channel.hotline_call, Channel.app_push}
    assert {p.action.reason for p in effects.actions} == {"escalation:unreachable"}
    [escalation] = effects.escalations
    assert (escalation.reason, escalation.tier, escalation.to_tier) == (EscalationReason.unreachable, Tier.low, Tier.medium)
    assert case.tier is Tier.medium


def test_reached_by_one_channel_is_not_escalated(rules):
    state, case = opened(rules, Tier.low)
    rules.on_outcome(state, outcome(action_on(case, Channel.sms), Result.delivered), now())
    voice = action_on(case, Channel.ai_voice)
    rules.on_outcome(state, outcome(voice, Result.unreachable), now())
    assert rules.on_outcome(state, outcome(voice, Result.unreachable, attempt=2), now()).escalations == []
    assert case.is_open and case.tier is Tier.low


def test_refused_high_visit_protects_the_accounts_and_escalates(rules):
    state, case = opened(rules, Tier.high, accounts=(("ICBC", "acct_1"), ("CCB", "acct_2")))
    effects = rules.on_outcome(state, outcome(action_on(case, Channel.police_visit), Result.refused), now())
    assert {(o.bank, o.account, o.kind, o.reason) for o in effects.bank} == {
        ("ICBC", "acct_1", RequestKind.apply, BankReasonCode.dissuasion_refused),
        ("CCB", "acct_2", RequestKind.apply, BankReasonCode.dissuasion_refused),
    }
    [escalation] = effects.escalations
    assert escalation.to_tier is Tier.funds_warning and len(escalation.bank_request_ids) == 2
    [emergency] = effects.actions
    assert (emergency.action.channel, emergency.action.priority) == (Channel.police_visit, 0)


def test_refused_at_the_top_closes_as_refused(rules):
    state, case = opened(rules, Tier.funds_warning)
    effects = rules.on_outcome(state, outcome(action_on(case, Channel.police_visit), Result.refused), now())
    assert not case.is_open and case.closed_by == "refused"
    assert [c.result for c in effects.closures] == ["refused"]
    assert [e.reason for e in effects.escalations] == [EscalationReason.refused]


def test_funds_warning_unreached_protects_the_accounts_at_the_first_miss(rules):
    state, case = opened(rules, Tier.funds_warning)
    effects = rules.on_outcome(state, outcome(action_on(case, Channel.police_visit), Result.unreachable), now())
    assert [(o.bank, o.reason) for o in effects.bank] == [("ICBC", BankReasonCode.unreachable_funds_warning)]
    assert [p.action.attempt for p in effects.actions] == [2]  # and the visit is tried again


def test_an_unplaced_persons_emergency_visit_stays_at_the_duty_desk_through_retry_and_supervisor(rules):
    # Not in the registry, cell and branch not registered, county unknown: the refused high
    # visit escalates to the emergency visit, which must go to a desk that exists, and so must
    # its retry and the supervisor an SLA breach sends (they copy the target).
    unplaced = Jurisdiction(county="unknown", station="unknown", grid="unknown")
    state, case = opened(rules, Tier.high, jurisdiction=unplaced, identity_resolved=False,
                         at=now() - timedelta(hours=2))
    desk = ("ZK-CENTRE-DUTY", "no registered home, cell or branch, county unknown: city centre duty desk")
    high_visit = action_on(case, Channel.police_visit, Tier.high)
    assert (high_visit.target.station, high_visit.target.station_reason) == desk
    [emergency] = rules.on_outcome(state, outcome(high_visit, Result.refused), now()).actions
    assert (emergency.action.tier, emergency.action.priority) == (Tier.funds_warning, 0)
    assert (emergency.action.target.station, emergency.action.target.station_reason) == desk
    [retry] = rules.on_outcome(state, outcome(emergency.action, Result.unreachable), now()).actions
    assert retry.action.attempt == 2 and (retry.action.target.station, retry.action.target.station_reason) == desk
    [due] = [d for d in rules.due(case.alert.person_id, state, now() + timedelta(hours=1))
             if d.due is DueKind.deadline and d.ref == emergency.action.action_id]
    [supervisor] = rules.on_due(state, due, now() + timedelta(hours=1)).actions
    assert supervisor.action.reason == "sla_breach"
    assert (supervisor.action.target.station, supervisor.action.target.station_reason) == desk


@pytest.mark.parametrize("result", [Result.dissuaded, Result.refused])
def test_one_visit_for_a_funds_warning_and_a_high_alert_settles_each_alert(rules, result):
    """The police-visit channel sends one officer for both (channels.visits); the carried visit's own
    outcome has that visit's result. Each alert is then settled as if it had had its own visit."""
    person = new_person()
    state = PersonState(partition=0)
    funds = alert(person, Tier.funds_warning, alert_id=f"{person}-F-ev1")
    high = alert(person, Tier.high, alert_id=f"{person}-A1", at=funds.alert_at + timedelta(minutes=2))
    rules.on_alert(state, funds)
    rules.on_alert(state, high)
    funds_case, high_case = state.alerts[funds.alert_id], state.alerts[high.alert_id]
    emergency, visit = action_on(funds_case, Channel.police_visit), action_on(high_case, Channel.police_visit)
    reported = outcome(emergency, result, at=high.alert_at + timedelta(minutes=10))
    rules.on_outcome(state, reported, now())
    effects = rules.on_outcome(state, carried_outcome(visit, f"{visit.action_id}:1", reported), now())
    assert funds_case.actions[emergency.action_id].reached and high_case.actions[visit.action_id].reached
    assert high_case.first_contact_at == funds_case.first_contact_at == reported.finished_at
    if result is Result.dissuaded:
        assert (funds_case.closed_by, high_case.closed_by) == ("dissuaded", "dissuaded")
        return
    # Refused at the door: the funds warning is at the top and closes as refused; the high alert protects
    # its accounts and escalates to an emergency visit of its own (dated when that visit ended: not carried).
    assert funds_case.closed_by == "refused" and high_case.is_open and high_case.tier is Tier.funds_warning
    assert [(o.bank, o.reason) for o in effects.bank] == [("ICBC", BankReasonCode.dissuasion_refused)]
    [again] = effects.actions
    assert (again.action.channel, again.action.reason) == (Channel.police_visit, "escalation:refused")


def test_a_new_transfer_goes_to_its_bank_only_once(rules):
    state, case = opened(rules, Tier.medium)
    signal = transfer(case.alert.person_id, bank="CCB", account="acct_0777")
    effects = rules.on_transfer(state, signal, now())
    assert [(o.bank, o.account, o.reason) for o in effects.bank] == [("CCB", "acct_0777", BankReasonCode.transfer_during_alert)]
    assert [e.reason for e in effects.escalations] == [EscalationReason.new_transfer]
    assert rules.on_transfer(state, signal, now()).bank == []  # a replay
    again = rules.on_transfer(state, transfer(case.alert.person_id, bank="CCB", account="acct_0777"), now())
    assert again.bank == [] and again.escalations  # measures in force already; still recorded


def test_transfers_that_are_evidence_or_older_than_the_alert_are_not_new(rules):
    state, case = opened(rules, Tier.medium)
    person = case.alert.person_id
    evidence = transfer(person, event_id=case.alert.signals[0].event_ids[0])
    older = transfer(person, at=case.alert.alert_at - timedelta(minutes=1))
    assert rules.on_transfer(state, evidence, now()).bank == []
    assert rules.on_transfer(state, older, now()).bank == []


def test_a_transfer_made_while_open_is_protected_even_when_judged_after_the_alert_closed(rules):
    # The visit dissuades the person at 10:05; escalate reads the 10:02 transfer after that.
    state, case = opened(rules, Tier.medium)
    person, opened_at = case.alert.person_id, case.alert.alert_at
    rules.on_outcome(state, outcome(action_on(case, Channel.hotline_call), Result.dissuaded,
                                    at=opened_at + timedelta(minutes=5)), now())
    assert case.closed_by == "dissuaded"
    during = rules.on_transfer(state, transfer(person, at=opened_at + timedelta(minutes=2)), now())
    assert [(o.kind, o.bank, o.reason) for o in during.bank] == [
        (RequestKind.apply, "CCB", BankReasonCode.transfer_during_alert)]
    after = rules.on_transfer(state, transfer(person, account="acct_0888", at=opened_at + timedelta(minutes=6)), now())
    assert after.bank == [] and after.escalations == [], "made after the person was dissuaded: nothing is due"


def test_a_transfer_to_an_unlisted_bank_is_counted_not_sent(rules):
    state, case = opened(rules, Tier.medium)
    effects = rules.on_transfer(state, transfer(case.alert.person_id, bank="CMB"), now())
    assert effects.bank == [] and effects.unroutable_banks == ["CMB"]


def test_dissuaded_closes_and_releases_measures_in_force(rules):
    state, case = opened(rules, Tier.medium)
    apply = rules.on_transfer(state, transfer(case.alert.person_id), now()).bank[0]
    ack = BankAck(request_id=apply.request_id, bank="CCB", kind=RequestKind.apply, status=AckStatus.applied,
                  acked_at=now(), signature="0" * 64)
    rules.on_bank_ack(state, case.alert.alert_id, ack, now())
    effects = rules.on_outcome(state, outcome(action_on(case, Channel.hotline_call), Result.dissuaded), now())
    assert case.closed_by == "dissuaded" and effects.closures[0].seconds is not None
    [release] = effects.bank
    assert (release.kind, release.bank, release.account) == (RequestKind.release, "CCB", "acct_0777")
    assert release.expires_at == case.bank_requests["CCB:acct_0777"].expires_at


def test_replayed_and_late_outcomes_change_nothing(rules):
    state, case = opened(rules, Tier.medium)
    call = outcome(action_on(case, Channel.hotline_call), Result.dissuaded)
    rules.on_outcome(state, call, now())
    assert rules.on_outcome(state, call, now()).closures == []
    assert rules.on_outcome(state, outcome(action_on(case, Channel.app_push), Result.unreachable), now()).actions == []


def test_an_unconfirmed_visit_breaches_its_sla_once(rules):
    state, case = opened(rules, Tier.high, at=now() - timedelta(hours=2))
    visit = action_on(case, Channel.police_visit)
    [due] = [d for d in rules.due(case.alert.person_id, state, now()) if d.due is DueKind.deadline]
    assert due.ref == visit.action_id
    effects = rules.on_due(state, due, now())
    assert effects.breaches == [Tier.high]
    [supervisor] = effects.actions
    assert (supervisor.action.reason, supervisor.action.priority) == ("sla_breach", visit.priority - 1)
    assert rules.on_due(state, due, now()).breaches == []


def test_an_alert_expires_explicitly(rules):
    state, case = opened(rules, Tier.low, at=now() - timedelta(seconds=ROUTING.escalation.alert_expiry_s + 1))
    [due] = [d for d in rules.due(case.alert.person_id, state, now()) if d.due is DueKind.expiry]
    effects = rules.on_due(state, due, now())
    assert case.closed_by == "expired" and [e.reason for e in effects.escalations] == [EscalationReason.expired]


def test_renewal_is_explicit_and_capped(rules):
    state, case = opened(rules, Tier.medium)
    apply = rules.on_transfer(state, transfer(case.alert.person_id), now()).bank[0]
    rules.on_bank_ack(state, case.alert.alert_id, BankAck(request_id=apply.request_id, bank="CCB", kind=RequestKind.apply,
                                                          status=AckStatus.applied, acked_at=now(), signature="0" * 64), now())
    later = apply.expires_at - timedelta(seconds=60)
    [due] = [d for d in rules.due(case.alert.person_id, state, later) if d.due is DueKind.renewal]
    [renew] = rules.on_due(state, due, later).bank
    assert renew.kind is RequestKind.renew and renew.expires_at > apply.expires_at
    request = case.bank_requests["CCB:acct_0777"]
    request.status = "renewed"
    assert not any(d.due is DueKind.renewal for d in rules.due(case.alert.person_id, state, renew.expires_at))


def test_a_rejected_request_is_escalated(rules):
    state, case = opened(rules, Tier.medium)
    apply = rules.on_transfer(state, transfer(case.alert.person_id), now()).bank[0]
    ack = BankAck(request_id=apply.request_id, bank="CCB", kind=RequestKind.apply, status=AckStatus.rejected,
                  acked_at=now(), signature="0" * 64, reason=RejectReason.bad_signature)
    effects = rules.on_bank_ack(state, case.alert.alert_id, ack, now())
    assert [e.reason for e in effects.escalations] == [EscalationReason.partner_rejected]
    assert "bad_signature" in effects.escalations[0].detail


def test_closed_state_is_forgotten_after_the_retention(rules):
    state, case = opened(rules, Tier.medium)
    rules.on_outcome(state, outcome(action_on(case, Channel.hotline_call), Result.dissuaded), now())
    later = now() + timedelta(seconds=ROUTING.escalation.closed_retention_s + 1)
    assert not rules.forgettable(state, now())
    assert rules.on_due(state, TimerDue(case.alert.person_id, "", DueKind.forget, "", later), later).forget


def test_an_upgrade_adds_only_the_higher_tier_and_not_what_escalation_sent(rules):
    state, case = opened(rules, Tier.low)
    up = alert(case.alert.person_id, Tier.medium, alert_id=case.alert.alert_id, version=2, previous_tier=Tier.low)
    rules.on_alert(state, up)
    assert {t.action.channel for t in case.actions.values() if t.action.tier is Tier.medium} == {
        Channel.hotline_call, Channel.app_push}
    tracked = len(case.actions)
    again = alert(case.alert.person_id, Tier.medium, alert_id=case.alert.alert_id, version=3, previous_tier=Tier.medium)
    rules.on_alert(state, again)
    assert len(case.actions) == tracked


def test_state_survives_the_table_round_trip(rules):
    """alert_state stores msgspec builtins as JSON: everything must come back as it was."""
    import json

    import msgspec

    state, case = opened(rules, Tier.high)
    rules.on_transfer(state, transfer(case.alert.person_id), now())
    stored = json.loads(json.dumps(msgspec.to_builtins(state)))
    assert msgspec.convert(stored, PersonState) == state


def test_an_outcome_read_before_its_alert_is_applied_when_the_alert_comes(rules):
    person = new_person()
    a = alert(person, Tier.medium)
    early_state = PersonState(partition=0)
    probe = PersonState(partition=0)
    rules.on_alert(probe, a)
    call = next(t.action for t in probe.alerts[a.alert_id].actions.values() if t.action.channel is Channel.hotline_call)
    assert rules.on_outcome(early_state, outcome(call, Result.dissuaded), now()) is None
    rules.hold(early_state, outcome(call, Result.dissuaded))
    effects = rules.on_alert(early_state, a)
    assert [c.result for c in effects.closures] == ["dissuaded"] and early_state.pending == []


# ------------------------------------------------------------------------ the timer's index
def applied_bank_request(rules: Rules):
    state, case = opened(rules, Tier.medium)
    apply = rules.on_transfer(state, transfer(case.alert.person_id), now()).bank[0]
    rules.on_bank_ack(state, case.alert.alert_id, BankAck(request_id=apply.request_id, bank="CCB", kind=RequestKind.apply,
                                                          status=AckStatus.applied, acked_at=now(), signature="0" * 64), now())
    return state, case, apply


def test_next_due_is_the_moment_of_the_first_finding_of_each_kind(rules):
    retention = timedelta(seconds=ROUTING.escalation.closed_retention_s)

    def first_found(state, at):
        assert rules.next_due(state) == at
        return [d.due for d in rules.due("P-x", state, at)]

    state, case = opened(rules, Tier.high)
    assert first_found(state, action_on(case, Channel.police_visit).deadline) == [DueKind.deadline]
    state, case = opened(rules, Tier.low)  # no SLA-tracked action
    assert first_found(state, rules.expires_at(case)) == [DueKind.expiry]
    state, case, apply = applied_bank_request(rules)
    assert first_found(state, apply.expires_at - timedelta(seconds=ROUTING.bank_requests.renew_before_s)) == [
        DueKind.renewal]
    rules.on_outcome(state, outcome(action_on(case, Channel.hotline_call), Result.dissuaded), now())
    assert first_found(state, case.closed_at + retention) == [DueKind.forget]
    waiting = PersonState(partition=0)  # an outcome whose alert never came
    held = outcome(action_on(case, Channel.app_push), Result.delivered)
    rules.hold(waiting, held)
    assert first_found(waiting, held.finished_at + retention) == [DueKind.forget]
    assert rules.next_due(PersonState(partition=0)) is None


def test_the_index_finds_whom_a_full_scan_finds(rules):
    """Built from the same states, the index names at every moment exactly the persons `due` finds something for."""
    states = {}
    for tier in (Tier.low, Tier.medium, Tier.high, Tier.funds_warning):
        for at in (now(), now() - timedelta(hours=2)):  # deadlines to come, and passed
            state, case = opened(rules, tier, at=at)
            states[case.alert.person_id] = state
    state, case, _apply = applied_bank_request(rules)
    states[case.alert.person_id] = state
    state, case = opened(rules, Tier.medium)
    rules.on_outcome(state, outcome(action_on(case, Channel.hotline_call), Result.dissuaded), now())
    states[case.alert.person_id] = state
    index = DueIndex()
    for person_id, state in states.items():
        index.put(person_id, state, rules.next_due(state))
    moments = {rules.next_due(s) for s in states.values()}
    probes = [now()] + [m + d for m in moments for d in (-timedelta(microseconds=1), timedelta(0))]
    for t in sorted(probes):  # forward, as the wall clock goes
        assert set(index.due(t)) == {p for p, s in states.items() if rules.due(p, s, t)}, t


def test_a_person_stays_due_until_their_state_is_written(rules):
    t0, s = now(), PersonState(partition=0)
    index = DueIndex()
    index.put("a", s, t0 + timedelta(seconds=10))
    index.put("b", s, t0 + timedelta(seconds=20))
    index.put("c", s, None)  # nothing can become due
    assert index.due(t0) == []
    assert index.due(t0 + timedelta(seconds=10)) == ["a"]
    assert index.due(t0 + timedelta(seconds=11)) == ["a"]  # not settled yet: found again, as the full scan did
    index.put("a", s, t0 + timedelta(seconds=30))  # written: its next moment
    assert index.due(t0 + timedelta(seconds=20)) == ["b"]
    index.put("b", s, t0 + timedelta(seconds=20))  # written, the same moment: still due
    assert index.due(t0 + timedelta(seconds=20)) == ["b"]
    index.drop("b")  # forgotten
    for at in (40, 50, 40):  # moved back and forth: one person, once
        index.put("d", s, t0 + timedelta(seconds=at))
    assert sorted(index.due(t0 + timedelta(days=1))) == ["a", "d"]
    assert len(index) == 3 and "b" not in index
    index.clear()
    assert index.due(t0 + timedelta(days=1)) == [] and len(index) == 0


def test_the_index_keeps_its_heap_bounded():
    t0, s = now(), PersonState(partition=0)
    index = DueIndex()
    for n in range(10_000):
        index.put(f"P-{n % 10}", s, t0 + timedelta(seconds=n))
    assert len(index._heap) <= 2 * len(index) + 64
    assert sorted(index.due(t0 + timedelta(days=1))) == [f"P-{n}" for n in range(10)]


def test_the_index_tallies_closed_and_dissuaded_alerts_as_they_change(rules):
    """The success ratio's counts follow closing, re-opening and forgetting, as a full scan would count them."""
    index = DueIndex()

    def put(state):
        index.put(next(iter(state.alerts.values())).alert.person_id, state, rules.next_due(state))

    dissuaded, case = opened(rules, Tier.medium)
    rules.on_outcome(dissuaded, outcome(action_on(case, Channel.hotline_call), Result.dissuaded), now())
    put(dissuaded)
    refused, top = opened(rules, Tier.funds_warning)
    put(refused)
    assert (index.closed, index.dissuaded) == closed_tally(dissuaded) == (1, 1)
    rules.on_outcome(refused, outcome(action_on(top, Channel.police_visit), Result.refused), now())
    put(refused)
    assert (index.closed, index.dissuaded) == (2, 1)
    upgrade = alert(case.alert.person_id, Tier.high, alert_id=case.alert.alert_id, version=2, previous_tier=Tier.medium)
    rules.on_alert(dissuaded, upgrade)  # at risk again: re-opened
    put(dissuaded)
    assert case.is_open and (index.closed, index.dissuaded) == (1, 0)
    index.drop(top.alert.person_id)  # forgotten
    assert (index.closed, index.dissuaded) == (0, 0)
