"""From a published record to ledger rows: one decoder and one row builder per contract.

`RECORD_KINDS` is keyed by the contract names topics.yaml uses, so the ledger reads every
topic whose contract it knows and learns new ones (another bank's request topic) from the
catalog alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from sqlalchemy import Table

from oversight import schema
from oversight.contracts import AuditRecord, FollowupOutcome, FollowupTask
from oversight.db import utc
from streams.contracts import (
    Action,
    Alert,
    BankAck,
    BankRequest,
    CarrierAck,
    CarrierRequest,
    CaseReport,
    Escalation,
    Ingested,
    Outcome,
)
from streams.contracts.alerts import ShadowAlert
from streams.contracts.rules_versions import RulesShadow, RulesVersion

Rows = list[tuple[Table, dict]]


@dataclass(frozen=True)
class RecordKind:
    name: str  # contract name in topics.yaml
    decoder: msgspec.json.Decoder
    rows: Callable[[object, str], Rows]  # (record, its JSON) -> rows to insert
    alert_ids: Callable[[object], list[str]]  # alerts whose status the record may change
    person_ids: Callable[[object], list[str]] = lambda _r: []  # persons whose alerts it may change


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def alert_rows(a: Alert, payload: str) -> Rows:
    j = a.jurisdiction
    rows: Rows = [(schema.alerts, dict(
        alert_id=a.alert_id, version=a.version, person_id=a.person_id, tier=a.tier.value, typology=a.typology.value,
        score=a.score, county=j.county, station=j.station, grid=j.grid, phone=a.phone,
        elderly=a.vulnerability.elderly, student=a.vulnerability.student, first_signal_at=utc(a.first_signal_at),
        alert_at=utc(a.alert_at), rules_version=a.rules_version, payload=payload,
    ))]
    for ref in {(acc.bank, acc.account) for acc in a.accounts}:
        rows.append((schema.alert_accounts, dict(alert_id=a.alert_id, version=a.version, bank=ref[0],
                                                 account=ref[1], person_id=a.person_id)))
    if a.reach_back is not None:
        rb = a.reach_back
        # source is a short code upstream; cut, never refused: a refused row would lose the whole alert.
        rows.append((schema.alert_reach_back, dict(
            alert_id=a.alert_id, version=a.version, person_id=a.person_id, kind=rb.kind.value, source=rb.source[:64],
            listed_at=utc(rb.listed_at), contacted_at=utc(rb.contacted_at), event_id=rb.event_id,
            county=j.county, station=j.station,
        )))
    return rows


def action_rows(a: Action, payload: str) -> Rows:
    return [(schema.actions, dict(
        action_id=a.action_id, alert_id=a.alert_id, alert_version=a.alert_version, person_id=a.person_id,
        channel=a.channel.value, tier=a.tier.value, county=a.jurisdiction.county, station=a.jurisdiction.station,
        priority=a.priority, deadline=utc(a.deadline), reason=a.reason, attempt=a.attempt,
        created_at=utc(a.created_at), payload=payload,
    ))]


def outcome_rows(o: Outcome, payload: str) -> Rows:
    return [(schema.outcomes, dict(
        outcome_id=o.outcome_id, action_id=o.action_id, alert_id=o.alert_id, person_id=o.person_id,
        channel=o.channel.value, result=o.result.value, started_at=utc(o.started_at),
        finished_at=utc(o.finished_at), attempt=o.attempt, payload=payload,
    ))]


def escalation_rows(e: Escalation, payload: str) -> Rows:
    rows: Rows = [(schema.escalations, dict(
        escalation_id=e.escalation_id, alert_id=e.alert_id, person_id=e.person_id, reason=e.reason.value,
        tier=e.tier.value, county=e.jurisdiction.county, station=e.jurisdiction.station, at=utc(e.at),
        payload=payload,
    ))]
    for request_id in dict.fromkeys(e.bank_request_ids):
        rows.append((schema.bank_request_alerts, dict(request_id=request_id, alert_id=e.alert_id,
                                                      escalation_id=e.escalation_id)))
    return rows


def bank_request_rows(r: BankRequest, payload: str) -> Rows:
    return [(schema.bank_requests, dict(
        request_id=r.request_id, bank=r.bank, account=r.account, kind=r.kind.value, reason_code=r.reason_code.value,
        alert_ref=r.alert_ref, issued_at=utc(r.issued_at), expires_at=utc(r.expires_at), payload=payload,
    ))]


def bank_ack_rows(a: BankAck, payload: str) -> Rows:
    return [(schema.bank_acks, dict(
        request_id=a.request_id, status=a.status.value, bank=a.bank, acked_at=utc(a.acked_at),
        reason=a.reason.value if a.reason else None, payload=payload,
    ))]


def carrier_request_rows(r: CarrierRequest, payload: str) -> Rows:
    return [(schema.carrier_requests, dict(
        request_id=r.request_id, carrier=r.carrier, phone=r.phone, reason_code=r.reason_code.value,
        issued_at=utc(r.issued_at), payload=payload,
    ))]


def carrier_ack_rows(a: CarrierAck, payload: str) -> Rows:
    return [(schema.carrier_acks, dict(
        request_id=a.request_id, status=a.status.value, carrier=a.carrier, acked_at=utc(a.acked_at), payload=payload,
    ))]


def case_rows(envelope: Ingested, payload: str) -> Rows:
    c: CaseReport = envelope.event
    return [(schema.case_reports, dict(
        event_id=c.event_id, case_id=c.case_id, typology=c.typology.value, county=c.county, station=c.station,
        victim_phone=c.victim_phone, victim_account=c.victim_account, loss_amount=c.loss_amount,
        occurred_at=utc(c.occurred_at), filed_at=utc(c.event_time), payload=_json(c),
    ))]


def audit_rows(a: AuditRecord, payload: str) -> Rows:
    rows: Rows = [(schema.audits, dict(
        audit_id=a.audit_id, case_id=a.case_id, person_id=a.person_id, typology=a.typology.value, county=a.county,
        station=a.station, filed_at=utc(a.filed_at), findings=len(a.findings), payload=payload,
    ))]
    for seq, finding in enumerate(a.findings):
        rows.append((schema.audit_findings, dict(
            audit_id=a.audit_id, seq=seq, problem=finding.problem.value, unit=finding.unit,
            alert_id=finding.alert_id, county=finding.county, station=finding.station,
        )))
    return rows


def followup_task_rows(t: FollowupTask, payload: str) -> Rows:
    return [(schema.followup_tasks, dict(
        task_id=t.task_id, person_id=t.person_id, alert_id=t.alert_id, county=t.county, station=t.station,
        period_start=utc(t.period_start), due_at=utc(t.due_at), payload=payload,
    ))]


def followup_outcome_rows(o: FollowupOutcome, payload: str) -> Rows:
    return [(schema.followup_outcomes, dict(
        followup_outcome_id=o.followup_outcome_id, task_id=o.task_id, alert_id=o.alert_id, person_id=o.person_id,
        station=o.station, result=o.result.value, visited_at=utc(o.visited_at), payload=payload,
    ))]


def rules_version_rows(r: RulesVersion, payload: str) -> Rows:
    return [(schema.rules_publications, dict(
        publication_id=r.publication_id, version=r.version, published_by=r.published_by,
        published_at=utc(r.published_at), why=r.why, rollback_from=r.rollback_from, payload=payload,
    ))]


def rules_shadow_rows(r: RulesShadow, payload: str) -> Rows:
    version = r.candidate.version if r.candidate is not None else None
    return [(schema.rules_shadows, dict(
        shadow_id=f"{r.set_at.isoformat()}/{version or 'stopped'}", version=version, set_by=r.set_by,
        set_at=utc(r.set_at), why=r.why, payload=payload,
    ))]


def shadow_alert_rows(a: ShadowAlert, payload: str) -> Rows:
    return [(schema.shadow_alerts, dict(
        alert_id=a.alert_id, version=a.version, rules_version=a.rules_version, person_id=a.person_id,
        tier=a.tier.value, typology=a.typology.value, county=a.jurisdiction.county, station=a.jurisdiction.station,
        alert_at=utc(a.alert_at), payload=payload,
    ))]


_ENCODER = msgspec.json.Encoder()


def _json(record) -> str:
    return _ENCODER.encode(record).decode()


def _kind(name, tp, rows, alert_ids, person_ids=lambda _r: []) -> RecordKind:
    return RecordKind(name, msgspec.json.Decoder(tp), rows, alert_ids, person_ids)


RECORD_KINDS: dict[str, RecordKind] = {k.name: k for k in (
    _kind("Alert", Alert, alert_rows, lambda r: [r.alert_id]),
    _kind("Action", Action, action_rows, lambda r: [r.alert_id]),
    _kind("Outcome", Outcome, outcome_rows, lambda r: [r.alert_id]),
    _kind("Escalation", Escalation, escalation_rows, lambda r: [r.alert_id]),
    _kind("BankRequest", BankRequest, bank_request_rows, lambda r: []),
    _kind("BankAck", BankAck, bank_ack_rows, lambda r: []),
    _kind("CarrierRequest", CarrierRequest, carrier_request_rows, lambda r: []),
    _kind("CarrierAck", CarrierAck, carrier_ack_rows, lambda r: []),
    _kind("Ingested[CaseReport]", Ingested[CaseReport], case_rows, lambda r: []),
    _kind("AuditRecord", AuditRecord, audit_rows, lambda r: []),
    _kind("FollowupTask", FollowupTask, followup_task_rows, lambda r: [r.alert_id]),
    _kind("FollowupOutcome", FollowupOutcome, followup_outcome_rows, lambda r: [r.alert_id]),
    _kind("RulesVersion", RulesVersion, rules_version_rows, lambda r: []),
    _kind("RulesShadow", RulesShadow, rules_shadow_rows, lambda r: []),
    _kind("ShadowAlert", ShadowAlert, shadow_alert_rows, lambda r: []),
)}


@dataclass
class Decoded:
    kind: RecordKind
    record: object
    rows: Rows


def decode(kind: RecordKind, raw: bytes) -> Decoded:
    """Raises msgspec.ValidationError / DecodeError / UnicodeDecodeError on a bad record."""
    record = kind.decoder.decode(raw)
    return Decoded(kind, record, kind.rows(record, _text(raw)))
