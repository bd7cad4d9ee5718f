"""Reverse accountability audit (预警成案倒查追责): what the ledger says about a warned person
who still became a fraud case, and where the chain broke.

`build_audit` is the judgement (reads the ledger, no I/O besides); oversight.audit_worker
runs it for every case report and publishes the record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from oversight import schema
from oversight.chain import Chain, load_chain
from oversight.contracts import AuditFinding, AuditRecord, AuditStep, Problem, StepKind
from oversight.db import aware, utc
from oversight.status import CONTACT_RESULTS, breached_actions
from streams.contracts import CaseReport

ACKED = {"applied", "renewed", "released"}


def alerts_in_lookback(conn: Connection, person_ids: set[str], case: CaseReport, lookback_days: int) -> list[str]:
    if not person_ids:
        return []
    a = schema.alerts.c
    filed = utc(case.event_time)
    rows = conn.execute(select(a.alert_id, a.alert_at).where(
        a.person_id.in_(sorted(person_ids)), a.alert_at <= filed, a.alert_at >= filed - timedelta(days=lookback_days)))
    return list(dict.fromkeys(alert_id for alert_id, _ in sorted(rows, key=lambda r: (r[1], r[0]))))


def build_audit(conn: Connection, case: CaseReport, person_ids: set[str], lookback_days: int, bank_ack_timeout_s: int,
                audited_at: datetime | None = None) -> AuditRecord | None:
    """The audit of this case, or None when its victim had no alert in the look-back."""
    alert_ids = alerts_in_lookback(conn, person_ids, case, lookback_days)
    if not alert_ids:
        return None
    chain = load_chain(conn, alert_ids)
    steps = chain.steps()
    steps.append(AuditStep(at=case.event_time, kind=StepKind.case, ref=case.case_id, unit=f"station:{case.station}",
                           summary=f"fraud case filed ({case.typology.value})"
                           + (f", loss {case.loss_amount} CNY" if case.loss_amount is not None else "")))
    latest = {}
    for a in sorted(chain.alerts, key=lambda a: a["version"]):
        latest[a["alert_id"]] = a
    person_id = latest[alert_ids[-1]]["person_id"]
    return AuditRecord(
        audit_id=f"AUD-{case.case_id}", case_id=case.case_id, case_event_id=case.event_id, person_id=person_id,
        typology=case.typology, county=case.county, station=case.station, filed_at=case.event_time,
        occurred_at=case.occurred_at, lookback_days=lookback_days, alert_ids=alert_ids, steps=steps,
        findings=findings(chain, latest, aware(utc(case.event_time)), bank_ack_timeout_s),
        responsible_units=sorted({f"station:{a['station']}" for a in latest.values()}),
        audited_at=audited_at or datetime.now(UTC),
        loss_amount=str(case.loss_amount) if case.loss_amount is not None else None,
    )


def findings(chain: Chain, latest: dict[str, dict], filed_at: datetime, bank_ack_timeout_s: int) -> list[AuditFinding]:
    out: list[AuditFinding] = []
    for alert_id, alert in latest.items():
        where = dict(alert_id=alert_id, county=alert["county"], station=alert["station"])
        actions = [a for a in chain.actions if a["alert_id"] == alert_id]
        outcomes = sorted((o for o in chain.outcomes if o["alert_id"] == alert_id),
                          key=lambda o: (o["finished_at"], o["outcome_id"]))
        escalations = [e for e in chain.escalations if e["alert_id"] == alert_id]
        if not actions:
            out.append(AuditFinding(Problem.no_action, "centre:routing", ref=f"{alert_id}:v{alert['version']}",
                                    detail=f"no dissuasion action for a {alert['tier']} alert", **where))
            continue
        if not any(o["result"] in CONTACT_RESULTS for o in outcomes):
            for unit in sorted({chain.unit_of_action(a["action_id"]) for a in actions}):
                out.append(AuditFinding(Problem.no_contact, unit, detail="no action of this unit reached the person",
                                        **where))
        out += _sla(chain, actions, outcomes, escalations, filed_at, where)
        out += _dead_ends(chain, outcomes, escalations, where)
        out += _dissuasion_that_did_not_hold(chain, outcomes, alert_id, where)
    out += _bank_requests(chain, latest, filed_at, bank_ack_timeout_s)
    return out


def _sla(chain: Chain, actions, outcomes, escalations, filed_at: datetime, where) -> list[AuditFinding]:
    out = []
    late = breached_actions(actions, outcomes, escalations)
    answered = {o["action_id"] for o in outcomes}
    for a in sorted(actions, key=lambda a: a["action_id"]):
        overdue = a["action_id"] not in answered and aware(a["deadline"]) < filed_at
        if a["action_id"] in late or overdue:
            out.append(AuditFinding(Problem.sla_breach, chain.unit_of_action(a["action_id"]), ref=a["action_id"],
                                    detail=f"{a['channel']} "
                                    + ("never reported" if overdue else "reported after its deadline"),
                                    **where))
    return out


def _dead_ends(chain: Chain, outcomes, escalations, where) -> list[AuditFinding]:
    """Refused or unreachable, and nothing followed: no escalation and no later contact."""
    out = []
    problems = {"refused": Problem.refused_without_escalation, "unreachable": Problem.unreachable_without_escalation,
                "failed": Problem.unreachable_without_escalation}
    for o in outcomes:
        if o["result"] not in problems:
            continue
        escalated = any(e["at"] >= o["finished_at"] for e in escalations)
        later = [x for x in outcomes if x["finished_at"] > o["finished_at"]]
        recovered = any(x["result"] == "dissuaded" for x in later) if o["result"] == "refused" else any(
            x["result"] in CONTACT_RESULTS for x in later)
        if not escalated and not recovered:
            unit = chain.unit_of_action(o["action_id"], o["channel"])
            out.append(AuditFinding(problems[o["result"]], unit, ref=o["outcome_id"],
                                    detail=f"{o['channel']} {o['result']}, not escalated", **where))
    return out


def _dissuasion_that_did_not_hold(chain: Chain, outcomes, alert_id: str, where) -> list[AuditFinding]:
    dissuaded = [o for o in outcomes if o["result"] == "dissuaded"]
    if not dissuaded:
        return []
    unit = chain.unit_of_action(dissuaded[-1]["action_id"], dissuaded[-1]["channel"])
    reopened = [f for f in chain.followup_outcomes if f["alert_id"] == alert_id and f["result"] == "not_dissuaded"]
    if reopened:
        return [AuditFinding(Problem.reopened_by_followup, unit, ref=reopened[-1]["followup_outcome_id"],
                             detail="follow-up visit found the person not actually dissuaded", **where)]
    return [AuditFinding(Problem.dissuasion_did_not_hold, unit, ref=dissuaded[-1]["outcome_id"],
                         detail=f"reported dissuaded on {dissuaded[-1]['channel']}, and still became a case", **where)]


def _bank_requests(chain: Chain, latest: dict[str, dict], filed_at: datetime, timeout_s: int) -> list[AuditFinding]:
    out = []
    any_alert = next(iter(latest.values()))
    for r in sorted(chain.bank_requests, key=lambda r: (r["issued_at"], r["request_id"])):
        if r["kind"] == "release":
            continue
        alert = latest.get(r.get("alert_id")) or any_alert
        where = dict(alert_id=alert["alert_id"], county=alert["county"], station=alert["station"])
        acks = [k for k in chain.bank_acks if k["request_id"] == r["request_id"]]
        in_time = [k for k in acks if k["status"] in ACKED
                   and (k["acked_at"] - r["issued_at"]).total_seconds() <= timeout_s]
        rejected = [k for k in acks if k["status"] == "rejected"]
        if in_time:
            continue
        if rejected:
            detail = f"rejected ({rejected[0]['reason'] or 'no reason'})"
        elif acks:
            detail = f"acknowledged after more than {timeout_s} s"
        elif (filed_at - aware(r["issued_at"])).total_seconds() > timeout_s:
            detail = "never acknowledged"
        else:
            continue  # still within its time when the case was filed
        out.append(AuditFinding(Problem.bank_request_unacknowledged, f"bank:{r['bank']}", ref=r["request_id"],
                                detail=f"{r['kind']} {r['reason_code']}: {detail}", **where))
    return out
