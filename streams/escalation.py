"""The rules of feedback and escalation, as pure functions over one person's alert_state.

Each handler takes the person's state (streams.alert_state) and one input (alert, outcome, transfer, partner
ack, timer finding), changes the state and returns the Effects to carry out. No I/O:
the escalate agent sends the effects, then writes the state, so a crash in between
repeats the same effects with the same ids (every id is deterministic) and nothing is lost.

An alert closes only with a final outcome (dissuaded, or refused with nowhere left to
escalate) or by explicit expiry, which is itself published for oversight to review.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import msgspec

from streams.alert_state import (
    ACTIVE,
    REACHED,
    VISIT_TIERS,
    AlertCase,
    BankOrder,
    Closure,
    Effects,
    PartnerRequest,
    PersonState,
    TrackedAction,
)
from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.contracts.alerts import TIER_RANK, Alert, EnrichedSignal, Tier
from streams.contracts.dissuasion import (
    AckStatus,
    BankAck,
    BankReasonCode,
    CarrierAck,
    DueKind,
    Escalation,
    EscalationReason,
    RequestKind,
    TimerDue,
)
from streams.contracts.signals import BankKind
from streams.dissuasion import CONTACT_CHANNELS, Planned, action_id, plan_for_alert, plan_reaching, short_hash
from streams.routing import Partners, Routing


class Rules:
    """The escalation rules for one routing.yaml and partner list."""

    def __init__(self, routing: Routing, partners: Partners):
        self.routing, self.partners = routing, partners

    # ------------------------------------------------------------------------------ alerts
    def on_alert(self, state: PersonState, alert: Alert) -> Effects:
        """Track what the route agent sends for the alert (it computes the same actions)."""
        case = state.alerts.get(alert.alert_id)
        tier, planned = plan_for_alert(alert, self.routing, self.partners)
        if case is None:
            state.alerts[alert.alert_id] = case = AlertCase(alert=alert, tier=tier or alert.tier, opened_at=alert.alert_at)
            self._track(case, planned)
            return self._apply_pending(state, alert.alert_id)
        if alert.version <= case.alert.version:
            return Effects()  # a replay
        case.alert = alert
        if tier is not None and TIER_RANK[tier] > TIER_RANK[case.tier]:
            case.tier = tier
            self._track(case, planned)
            if not case.is_open:  # at risk again after it closed: the new tier's actions are on their way
                case.status, case.closed_at, case.closed_by = "open", None, None
        return Effects()

    # ---------------------------------------------------------------------------- outcomes
    def hold(self, state: PersonState, outcome: Outcome) -> None:
        """Keep an outcome whose alert has not been read yet; never drop it."""
        if all(o.outcome_id != outcome.outcome_id for o in state.pending):
            state.pending.append(outcome)

    def _apply_pending(self, state: PersonState, alert_id: str) -> Effects:
        effects = Effects()
        for outcome in [o for o in state.pending if o.alert_id == alert_id]:
            state.pending.remove(outcome)
            effects.extend(self.on_outcome(state, outcome, outcome.finished_at))
        return effects

    def on_outcome(self, state: PersonState, outcome: Outcome, now: datetime) -> Effects | None:
        """None when the person's state has no such alert (the caller decides what that means)."""
        case = state.alerts.get(outcome.alert_id)
        if case is None:
            return None
        effects = Effects()
        if outcome.outcome_id in case.outcome_ids:
            return effects
        case.outcome_ids.append(outcome.outcome_id)
        if not case.is_open:
            return effects  # a late outcome of a closed alert: kept for the record only
        reached = outcome.result in REACHED
        if reached and case.first_contact_at is None:
            case.first_contact_at = outcome.finished_at
            effects.first_contact_s.append(_seconds(case.opened_at, outcome.finished_at))
        tracked = case.actions.get(outcome.action_id)
        if tracked is not None:
            self._record(tracked, outcome, now, effects)
        current = tracked is None or tracked.action.tier == case.tier
        if outcome.result is Result.dissuaded:
            self._close(case, "dissuaded", outcome.finished_at, now, effects)
        elif outcome.result is Result.refused:
            self._on_refused(case, tracked, outcome, current, now, effects)
        elif not reached:
            self._on_not_reached(case, outcome, current, now, effects)
        return effects

    def _record(self, tracked: TrackedAction, outcome: Outcome, now: datetime, effects: Effects) -> None:
        if outcome.result in REACHED:
            tracked.reached = True
        elif outcome.attempt >= tracked.attempts:
            tracked.exhausted = True
        elif outcome.attempt >= tracked.action.attempt:  # not an older attempt arriving late: try again
            tracked.action = msgspec.structs.replace(tracked.action, attempt=outcome.attempt + 1, created_at=now)
            effects.actions.append(Planned(tracked.action, tracked.attempts, tracked.sla_tracked, None))

    def _on_refused(self, case, tracked, outcome, current, now, effects) -> None:
        bank_ids = []
        if tracked is not None and tracked.action.channel is Channel.police_visit and tracked.action.tier in VISIT_TIERS:
            bank_ids = self._protect_accounts(case, BankReasonCode.dissuasion_refused, now, effects)
        if not current:  # refused at a tier already escalated from: the higher tier is at work
            if bank_ids:
                self._publish(case, EscalationReason.refused, outcome.outcome_id, now, effects, bank_ids=bank_ids)
            return
        if not self._escalate(case, EscalationReason.refused, outcome.outcome_id, outcome.finished_at, now, effects,
                              bank_ids):
            self._publish(case, EscalationReason.refused, outcome.outcome_id, now, effects, bank_ids=bank_ids,
                          detail="refused at the highest tier: closed as refused")
            self._close(case, "refused", outcome.finished_at, now, effects)

    def _on_not_reached(self, case, outcome, current, now, effects) -> None:
        bank_ids = []
        if Tier.funds_warning in (case.tier, case.alert.tier):
            # Money moves in minutes: protect the accounts at the first miss, not after every retry.
            bank_ids = self._protect_accounts(case, BankReasonCode.unreachable_funds_warning, now, effects)
        contact = [t for t in case.actions.values()
                   if t.action.tier == case.tier and t.action.channel in CONTACT_CHANNELS]
        if current and contact and all(t.exhausted for t in contact):
            why = EscalationReason.unreachable if outcome.result is Result.unreachable else EscalationReason.channel_failed
            if self._escalate(case, why, outcome.outcome_id, outcome.finished_at, now, effects, bank_ids):
                return
        if bank_ids:
            self._publish(case, EscalationReason.unreachable, outcome.outcome_id, now, effects, bank_ids=bank_ids,
                          detail="funds warning and the person was not reached: accounts protected")

    # --------------------------------------------------------------------------- transfers
    def on_transfer(self, state: PersonState, signal: EnrichedSignal, now: datetime) -> Effects:
        """A new transfer out made while an alert was open: that bank protects that account.

        "While open" by the transfer's own time, not by when it reaches this stage: a visit
        may close the alert as dissuaded between the transfer and its judgement, and the
        money left while the person was still at risk."""
        effects = Effects()
        bank = signal.bank
        if bank is None or bank.kind is not BankKind.transfer_out:
            return effects
        cases = [c for c in state.alerts.values()
                 if _open_at(c, signal.event_time) and not _is_evidence(c.alert, signal.event_id)]
        if not cases:
            return effects
        case = max(cases, key=lambda c: (TIER_RANK[c.tier], c.alert.alert_at))
        if signal.event_id in case.transfer_ids:
            return effects
        case.transfer_ids.append(signal.event_id)
        ids = self._protect(case, bank.bank, bank.account, BankReasonCode.transfer_during_alert, now, effects)
        self._publish(case, EscalationReason.new_transfer, signal.event_id, now, effects, bank_ids=ids,
                      detail="" if ids else "measures already in force on that account")
        return effects

    # ------------------------------------------------------------------------------ timer
    def on_due(self, state: PersonState, due: TimerDue, now: datetime) -> Effects:
        """Re-check a timer finding against the state: it may be settled already."""
        effects = Effects()
        case = state.alerts.get(due.alert_id)
        if due.due is DueKind.forget:
            effects.forget = self.forgettable(state, now)
            return effects
        if case is None or not case.is_open:
            return effects
        if due.due is DueKind.deadline:
            self._on_deadline(case, case.actions.get(due.ref), now, effects)
        elif due.due is DueKind.expiry and now >= self.expires_at(case):
            self._publish(case, EscalationReason.expired, f"expiry:{case.alert.alert_id}", now, effects,
                          detail="no final outcome before the alert expired")
            self._close(case, "expired", now, now, effects)
        elif due.due is DueKind.renewal:
            self._renew(case, due.ref, now, effects)
        return effects

    def _on_deadline(self, case: AlertCase, tracked: TrackedAction | None, now: datetime, effects: Effects) -> None:
        if tracked is None or not tracked.sla_tracked or tracked.settled or tracked.breached:
            return
        if tracked.action.deadline > now:
            return
        tracked.breached = True
        effects.breaches.append(tracked.action.tier)
        ids = []
        visit = self.routing.escalation.supervisor_visit
        if case.supervisor_visits < visit.max_per_alert:
            case.supervisor_visits += 1
            breached = tracked.action
            supervisor = msgspec.structs.replace(
                breached,
                action_id=action_id(case.alert.alert_id, breached.alert_version, breached.tier, Channel.police_visit,
                                    "sla_breach", about=breached.action_id),
                priority=max(0, breached.priority - 1),
                deadline=breached.deadline + timedelta(seconds=visit.sla_s),
                reason="sla_breach", attempt=1, created_at=now,
            )
            case.actions[supervisor.action_id] = TrackedAction(supervisor, tracked.attempts, sla_tracked=True)
            effects.actions.append(Planned(supervisor, tracked.attempts, True, None))
            ids.append(supervisor.action_id)
        self._publish(case, EscalationReason.sla_breach, tracked.action.action_id, now, effects, action_ids=ids,
                      detail="" if ids else "supervisor visits for this alert used up")

    # ---------------------------------------------------------------------- partner acks
    def on_bank_ack(self, state: PersonState, alert_id: str, ack: BankAck, now: datetime) -> Effects:
        effects = Effects()
        case = state.alerts.get(alert_id)
        request = next((r for r in (case.bank_requests.values() if case else ()) if ack.request_id in r.message_ids), None)
        if request is None:
            return effects
        effects.acks.append((ack.bank, ack.status.value))
        if ack.status is AckStatus.rejected:
            request.status = "rejected"
            self._publish(case, EscalationReason.partner_rejected, ack.request_id, now, effects,
                          detail=f"bank {ack.bank} rejected the {ack.kind.value if ack.kind else 'request'}: "
                                 f"{ack.reason.value if ack.reason else 'no reason given'}")
        elif ack.request_id == request.message_ids[-1]:  # a late apply ack must not undo a release sent since
            request.status = ack.status.value
        return effects

    def on_carrier_ack(self, state: PersonState, alert_id: str, ack: CarrierAck, now: datetime) -> Effects:
        effects = Effects()
        case = state.alerts.get(alert_id)
        request = case.carrier_requests.get(ack.request_id) if case else None
        if request is None:
            return effects
        effects.acks.append((ack.carrier, ack.status.value))
        request.status = ack.status.value
        if ack.status is AckStatus.rejected:
            self._publish(case, EscalationReason.partner_rejected, ack.request_id, now, effects,
                          detail=f"carrier {ack.carrier} rejected the line suspension: "
                                 f"{ack.reason.value if ack.reason else 'no reason given'}")
        return effects

    # ----------------------------------------------------------------- what the timer looks for
    def expires_at(self, case: AlertCase) -> datetime:
        return case.opened_at + timedelta(seconds=self.routing.escalation.alert_expiry_s)

    def forget_at(self, state: PersonState) -> datetime | None:
        """When the state becomes forgettable: every alert closed, and every outcome still waiting for its
        alert, longer ago than the retention. None while an alert is open (or there is nothing to forget)."""
        if not (state.alerts or state.pending) or any(c.is_open for c in state.alerts.values()):
            return None
        retention = timedelta(seconds=self.routing.escalation.closed_retention_s)
        return max([c.closed_at + retention for c in state.alerts.values()]
                   + [o.finished_at + retention for o in state.pending])

    def forgettable(self, state: PersonState, now: datetime) -> bool:
        at = self.forget_at(state)
        return at is not None and at <= now

    def _moments(self, state: PersonState) -> Iterator[tuple[datetime, str, DueKind, str]]:
        """(from when, alert id, kind, ref) of everything the timer can find in the state, in the order `due`
        lists them. Each is found at every moment from then on, until the state changes: `due` and
        `next_due` both read this, so the timer's index and its findings cannot drift apart."""
        renew_before = timedelta(seconds=self.routing.bank_requests.renew_before_s)
        for alert_id, case in state.alerts.items():
            if not case.is_open:
                continue
            for t in case.actions.values():
                if t.sla_tracked and not t.settled and not t.breached:
                    yield t.action.deadline, alert_id, DueKind.deadline, t.action.action_id
            yield self.expires_at(case), alert_id, DueKind.expiry, ""
            for r in case.bank_requests.values():
                if r.status in ("applied", "renewed") and r.renewals < self.routing.bank_requests.max_renewals:
                    yield r.expires_at - renew_before, alert_id, DueKind.renewal, r.request_id
        forget_at = self.forget_at(state)
        if forget_at is not None:
            yield forget_at, "", DueKind.forget, ""

    def due(self, person_id: str, state: PersonState, now: datetime) -> list[TimerDue]:
        return [TimerDue(person_id, alert_id, kind, ref, now)
                for at, alert_id, kind, ref in self._moments(state) if at <= now]

    def next_due(self, state: PersonState) -> datetime | None:
        """The earliest moment `due` finds anything in this state (None: never, unless the state changes).
        `due(state, t)` is empty for every t before it and not empty from it on."""
        return min((at for at, *_ in self._moments(state)), default=None)

    # --------------------------------------------------------------------------- helpers
    def _track(self, case: AlertCase, planned: list[Planned]) -> list[Planned]:
        """Record planned actions whose slot is free; returns those (the others are already on their way)."""
        fresh = [p for p in planned if p.slot is None or p.slot not in case.slots]
        for p in fresh:
            self._track_one(case, p.action, p)
        return fresh

    def _track_one(self, case: AlertCase, action: Action, planned: Planned) -> None:
        case.actions[action.action_id] = TrackedAction(action, planned.attempts, planned.sla_tracked)
        if planned.slot is not None:
            case.slots[planned.slot] = action.action_id
        if action.channel is Channel.line_suspension:  # the request id is the action id (streams.dissuasion)
            expires = action.created_at + timedelta(seconds=self.routing.line_suspension.expires_s)
            case.carrier_requests[action.action_id] = PartnerRequest(
                action.action_id, action.target.carrier, action.reason, "sent", expires, message_ids=[action.action_id])

    def adopt(self, case: AlertCase, planned: Planned, owner: str) -> None:
        """Another agent holds the slot with its own action: track that one instead of ours."""
        case.actions.pop(planned.action.action_id, None)
        case.carrier_requests.pop(planned.action.action_id, None)
        self._track_one(case, msgspec.structs.replace(planned.action, action_id=owner), planned)

    def _escalate(self, case, why, trigger, base, now, effects, bank_ids) -> bool:
        """The next tier's actions; False when there is no higher tier."""
        start = self.routing.escalation.next_tier.get(case.tier)
        tier, planned = plan_reaching(case.alert, start, f"escalation:{why.value}", base, self.routing, self.partners)
        if tier is None:
            return False
        previous, case.tier = case.tier, tier
        fresh = self._track(case, planned)
        effects.actions += fresh
        self._publish(case, why, trigger, now, effects, tier=previous, to_tier=tier,
                      action_ids=[p.action.action_id for p in fresh], bank_ids=bank_ids)
        return True

    def _protect_accounts(self, case: AlertCase, reason: BankReasonCode, now, effects) -> list[str]:
        ids = []
        for ref in case.alert.accounts:
            ids += self._protect(case, ref.bank, ref.account, reason, now, effects)
        return ids

    def _protect(self, case: AlertCase, bank: str, account: str, reason: BankReasonCode, now, effects) -> list[str]:
        """Apply protective measures on one account, unless they are in force already."""
        key = f"{bank}:{account}"
        existing = case.bank_requests.get(key)
        if existing is not None and existing.status in ACTIVE | {"unroutable"}:
            return []
        issued = sum(len(r.message_ids) for r in case.bank_requests.values())  # only grows: ids never repeat
        request_id = "br-" + short_hash(case.alert.alert_id, bank, account, "apply", issued)
        expires = now + timedelta(seconds=self.routing.bank_requests.expires_s)
        routable = bank in self.partners.banks
        case.bank_requests[key] = PartnerRequest(request_id, bank, reason.value, "sent" if routable else "unroutable",
                                                 expires, account=account, message_ids=[request_id])
        if not routable:
            effects.unroutable_banks.append(bank)
            return []
        effects.bank.append(BankOrder(request_id, case.alert.alert_id, bank, account, RequestKind.apply, reason, expires))
        return [request_id]

    def _renew(self, case: AlertCase, request_id: str, now: datetime, effects: Effects) -> None:
        request = next((r for r in case.bank_requests.values() if r.request_id == request_id), None)
        policy = self.routing.bank_requests
        if request is None or request.status not in ("applied", "renewed") or request.renewals >= policy.max_renewals:
            return
        if request.expires_at - timedelta(seconds=policy.renew_before_s) > now:
            return
        request.renewals += 1
        renew_id = "br-" + short_hash(request.request_id, "renew", request.renewals)
        request.expires_at = now + timedelta(seconds=policy.expires_s)
        request.status = "renew_sent"
        request.message_ids.append(renew_id)
        effects.bank.append(BankOrder(renew_id, case.alert.alert_id, request.partner, request.account,
                                      RequestKind.renew, BankReasonCode(request.reason), request.expires_at))

    def _close(self, case: AlertCase, result: str, at: datetime, now: datetime, effects: Effects) -> None:
        case.status, case.closed_at, case.closed_by = "closed", at, result
        effects.closures.append(Closure(result, None if result == "expired" else _seconds(case.opened_at, at)))
        if result != "dissuaded":
            return  # refused or expired: the measures stay until they lapse
        for request in case.bank_requests.values():
            if request.status in ACTIVE:
                release_id = "br-" + short_hash(request.request_id, "release")
                request.status = "release_sent"
                request.message_ids.append(release_id)
                # Valid until the measures would lapse anyway: after that a release has nothing to lift.
                effects.bank.append(BankOrder(release_id, case.alert.alert_id, request.partner, request.account,
                                              RequestKind.release, BankReasonCode.dissuaded, request.expires_at))

    def _publish(self, case: AlertCase, reason: EscalationReason, trigger: str, now: datetime, effects: Effects, *,
                 tier: Tier | None = None, to_tier: Tier | None = None, action_ids=(), bank_ids=(), detail="") -> None:
        effects.escalations.append(Escalation(
            escalation_id="esc-" + short_hash(case.alert.alert_id, reason.value, trigger),
            alert_id=case.alert.alert_id, person_id=case.alert.person_id, reason=reason, tier=tier or case.tier,
            jurisdiction=case.alert.jurisdiction, trigger=trigger, at=now, to_tier=to_tier,
            action_ids=list(action_ids), bank_request_ids=list(bank_ids), detail=detail,
        ))


def _open_at(case: AlertCase, t: datetime) -> bool:
    if t < case.alert.alert_at:
        return False
    return case.is_open or (case.closed_at is not None and t < case.closed_at)


def _is_evidence(alert: Alert, event_id: str) -> bool:
    return any(event_id in s.event_ids for s in alert.signals)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
