"""Scripted, synthetic warning stories for the oversight tests: alerts, actions, outcomes,
escalations, partner requests and case reports, as they appear on their topics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec

from oversight.contracts import FollowupOutcome, FollowupResult
from streams.contracts import (
    Action,
    Alert,
    BankAck,
    BankRequest,
    CarrierRequest,
    CaseReport,
    Channel,
    Escalation,
    Ingested,
    Outcome,
    Result,
    Tier,
)
from streams.contracts.alerts import AccountRef, FiredSignal, Jurisdiction, ReachBack, Vulnerability
from streams.contracts.common import Typology
from streams.contracts.dissuasion import (
    AckStatus,
    BankMeasure,
    BankReasonCode,
    CarrierMeasure,
    CarrierReasonCode,
    EscalationReason,
    RequestKind,
)
from streams.contracts.reference import IntelKind

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SIG = "0" * 64
ENCODE = msgspec.json.encode

# Line suspensions leave as signed CarrierRequests (carrier_request), not as actions.
ACTION_TOPIC = {c: f"actions_{c.value}" for c in Channel if c is not Channel.line_suspension}


@dataclass
class Story:
    """Records of one person's warnings, in publication order: (topic id, key, record)."""

    person_id: str
    phone: str
    county: str = "ZK01"
    station: str = "ZK01-PS01"
    grid: str = "ZK01-PS01-G01"
    account: str = "acct-0001"
    bank: str = "ICBC"
    records: list[tuple[str, bytes, object]] = field(default_factory=list)
    _alerts: dict[str, Alert] = field(default_factory=dict)

    @property
    def jurisdiction(self) -> Jurisdiction:
        return Jurisdiction(self.county, self.station, self.grid)

    def _add(self, topic_id: str, record) -> object:
        self.records.append((topic_id, self.person_id.encode(), record))
        return record

    def alert(self, alert_id: str, minutes: float, tier=Tier.medium, typology=Typology.investment, version=1,
              events=("ev-1",), reach_back: ReachBack | None = None) -> Alert:
        at = T0 + timedelta(minutes=minutes)
        alert = Alert(
            alert_id=alert_id, version=version, person_id=self.person_id, identity_resolved=True, tier=tier,
            typology=typology, score=50.0 + 10 * version,
            signals=[FiredSignal(rule="contact_with_listed_number", weight=40, event_ids=list(events),
                                 detail="call with a listed number")],
            jurisdiction=self.jurisdiction, vulnerability=Vulnerability(elderly=True),
            first_signal_at=at - timedelta(minutes=2),
            alert_at=at, rules_version="test-1", phone=self.phone, carrier="china_mobile",
            accounts=[AccountRef(bank=self.bank, account=self.account)], reach_back=reach_back,
        )
        self._alerts[alert_id] = alert
        return self._add("alerts", alert)

    def action(self, alert_id: str, channel: Channel, minutes: float, sla_minutes: float = 30, reason="initial",
               attempt=1) -> Action:
        alert = self._alerts[alert_id]
        at = T0 + timedelta(minutes=minutes)
        action = Action(
            action_id=f"{alert_id}-{channel.value}-{reason}-{attempt}", alert_id=alert_id, alert_version=alert.version,
            person_id=self.person_id, channel=channel, tier=alert.tier, typology=alert.typology,
            target={"phone": self.phone} if channel is not Channel.police_visit else {"station": self.station},
            jurisdiction=self.jurisdiction, priority=1, deadline=at + timedelta(minutes=sla_minutes),
            script_key=alert.typology.value, reason=reason, attempt=attempt, created_at=at,
        )
        return self._add(ACTION_TOPIC[channel], action)

    def outcome(self, action: Action, result: Result, minutes: float) -> Outcome:
        at = T0 + timedelta(minutes=minutes)
        outcome = Outcome(
            outcome_id=f"{action.action_id}-o{action.attempt}", action_id=action.action_id, alert_id=action.alert_id,
            person_id=self.person_id, channel=action.channel, result=result, started_at=at - timedelta(seconds=30),
            finished_at=at, attempt=action.attempt,
        )
        return self._add("outcomes", outcome)

    def escalation(self, alert_id: str, reason: EscalationReason, minutes: float, trigger: str = "",
                   bank_request_ids=()) -> Escalation:
        alert = self._alerts[alert_id]
        esc = Escalation(
            escalation_id=f"{alert_id}-esc-{reason.value}", alert_id=alert_id, person_id=self.person_id, reason=reason,
            tier=alert.tier, jurisdiction=self.jurisdiction, trigger=trigger, at=T0 + timedelta(minutes=minutes),
            bank_request_ids=list(bank_request_ids),
        )
        return self._add("escalations", esc)

    def bank_request(self, request_id: str, minutes: float) -> BankRequest:
        at = T0 + timedelta(minutes=minutes)
        req = BankRequest(
            request_id=request_id, bank=self.bank, account=self.account,
            measures=[BankMeasure.protective_stop_payment], reason_code=BankReasonCode.dissuasion_refused,
            alert_ref="a" * 32, issued_at=at, expires_at=at + timedelta(hours=48), kind=RequestKind.apply, signature=SIG,
        )
        return self._add("bank_requests", req)

    def bank_ack(self, request_id: str, minutes: float, status=AckStatus.applied) -> BankAck:
        ack = BankAck(request_id=request_id, bank=self.bank, kind=RequestKind.apply, status=status,
                      acked_at=T0 + timedelta(minutes=minutes), signature=SIG)
        return self._add("bank_acks", ack)

    def carrier_request(self, request_id: str, minutes: float) -> CarrierRequest:
        at = T0 + timedelta(minutes=minutes)
        req = CarrierRequest(request_id=request_id, carrier="china_mobile", phone=self.phone,
                             measure=CarrierMeasure.suspend_line, reason_code=CarrierReasonCode.high_risk_alert,
                             alert_ref="b" * 32, issued_at=at, expires_at=at + timedelta(hours=48), signature=SIG)
        return self._add("carrier_requests", req)

    def case(self, case_id: str, minutes: float, loss: str | None = "38000.00", typology=Typology.investment,
             by_account=False) -> Ingested:
        at = T0 + timedelta(minutes=minutes)
        report = CaseReport(
            event_id=f"case-ev-{case_id}", event_time=at, case_id=case_id, occurred_at=at - timedelta(hours=2),
            typology=typology, county=self.county, station=self.station,
            victim_phone=None if by_account else self.phone, victim_account=self.account if by_account else None,
            loss_amount=Decimal(loss) if loss else None,
        )
        envelope = Ingested(event=report, ingested_at=at, source_topic="antifraud.in.case", source_partition=0,
                            source_offset=0)
        self.records.append(("norm_case", (self.phone if not by_account else self.account).encode(), envelope))
        return envelope

    def followup(self, task_id: str, alert_id: str, result: FollowupResult, minutes: float) -> FollowupOutcome:
        out = FollowupOutcome(followup_outcome_id=f"{task_id}-r", task_id=task_id, person_id=self.person_id,
                              alert_id=alert_id, station=self.station, result=result,
                              visited_at=T0 + timedelta(minutes=minutes))
        return self._add("followup_outcomes", out)


def reach_back(listed_minutes: float, contacted_minutes: float, source="case_review", kind=IntelKind.fraud_number,
               event_id="ev-rb") -> ReachBack:
    """The late intelligence behind a retro alert version: an entry listed after the contact it caught."""
    return ReachBack(kind=kind, source=source, listed_at=T0 + timedelta(minutes=listed_minutes),
                     contacted_at=T0 + timedelta(minutes=contacted_minutes), event_id=event_id)


def topic_of(catalog, topic_id: str) -> str | None:
    """The topic for a story's record; partner topics are found by contract (their ids are per partner)."""
    if topic_id in catalog.topics:
        return catalog.topic(topic_id).name
    contract = {"escalations": "Escalation", "bank_requests": "BankRequest", "bank_acks": "BankAck",
                "carrier_requests": "CarrierRequest", "carrier_acks": "CarrierAck"}[topic_id]
    specs = [s for s in catalog.topics.values() if s.contract == contract]
    return specs[0].name if specs else None


def publish(producer, catalog, stories, repeat: int = 1) -> int:
    """Produce every record of the stories (each `repeat` times); returns how many were sent."""
    sent = 0
    for _ in range(repeat):
        for story in stories:
            for topic_id, key, record in story.records:
                topic = topic_of(catalog, topic_id)
                if topic is None:
                    continue
                producer.produce(topic, key=key, value=ENCODE(record))
                sent += 1
    producer.flush(30)
    return sent


def wait_until(predicate, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)
