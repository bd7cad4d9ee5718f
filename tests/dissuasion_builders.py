"""Builders of alerts, outcomes and transfers for the dissuasion tests: synthetic values only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.contracts.alerts import AccountRef, Alert, EnrichedSignal, FiredSignal, Jurisdiction, Tier, Vulnerability
from streams.contracts.common import Typology
from streams.contracts.signals import BankChannel, BankEvent, BankKind
from streams.dissuasion import plan_for_alert
from streams.routing import get_partners, get_routing

PHONE = "+8613800000001"
JURISDICTION = Jurisdiction("411602", "411602-PCS-03", "411602-03-017")


def now() -> datetime:
    return datetime.now(UTC)


def new_person() -> str:
    return f"P-{uuid.uuid4().hex[:10]}"


def alert(person_id: str, tier: Tier = Tier.low, *, alert_id: str | None = None, version: int = 1,
          previous_tier: Tier | None = None, at: datetime | None = None, phone: str | None = PHONE,
          carrier: str | None = "china_mobile", accounts=(("ICBC", "acct_0001"),),
          typology: Typology = Typology.impersonate_police, jurisdiction: Jurisdiction = JURISDICTION,
          identity_resolved: bool = True) -> Alert:
    at = at or now()
    return Alert(
        alert_id=alert_id or f"AL-{person_id}-{tier.value}", version=version, person_id=person_id,
        identity_resolved=identity_resolved, tier=tier, typology=typology, score=0.9,
        signals=[FiredSignal(rule="known_fraud_number", weight=0.9, event_ids=[f"ev-{person_id}-1"])],
        jurisdiction=jurisdiction, vulnerability=Vulnerability(elderly=True), first_signal_at=at - timedelta(minutes=5),
        alert_at=at, rules_version="test", phone=phone, carrier=carrier,
        accounts=[AccountRef(bank=b, account=a) for b, a in accounts], previous_tier=previous_tier,
    )


def outcome(action: Action, result: Result, attempt: int | None = None, at: datetime | None = None) -> Outcome:
    attempt = attempt or action.attempt
    at = at or now()
    return Outcome(
        outcome_id=f"{action.action_id}:{attempt}", action_id=action.action_id, alert_id=action.alert_id,
        person_id=action.person_id, channel=action.channel, result=result, started_at=at, finished_at=at,
        attempt=attempt,
    )


def planned_visit(a: Alert) -> Action:
    """The police visit route plans for the alert, by routing.yaml as it is."""
    return next(p.action for p in plan_for_alert(a, get_routing(), get_partners())[1]
                if p.action.channel is Channel.police_visit)


def transfer(person_id: str, bank: str = "CCB", account: str = "acct_0777", at: datetime | None = None,
             event_id: str | None = None) -> EnrichedSignal:
    at = at or now()
    event = BankEvent(
        event_id=event_id or f"tr-{uuid.uuid4().hex[:8]}", event_time=at, bank=bank, kind=BankKind.transfer_out,
        account=account, branch_code="ZK-411602-003", channel=BankChannel.mobile_banking,
        counterparty_account="tok_mule_8d31e0", amount=Decimal("4980.00"), payee_is_new=True,
    )
    return EnrichedSignal(
        event_id=event.event_id, event_time=at, ingested_at=at, person_id=person_id, identity_resolved=True,
        jurisdiction=JURISDICTION, vulnerability=Vulnerability(elderly=True), phone=PHONE, bank=event,
    )
