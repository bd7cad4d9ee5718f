"""Each alert's status, derived from its records (alert_status).

Pure function of the stored records, so it does not matter in which order the topics
were read: the sink and a rebuild arrive at the same row.

    closed       a follow-up confirmed the dissuasion, a case was filed for the person
                 after the alert (预警成案), or escalate let the alert expire
    dissuaded    an outcome says dissuaded (after the last reopen by a follow-up)
    escalated    escalated (after the last reopen) and not dissuaded
    unreachable  the last outcome is unreachable or failed, and nothing was escalated
    open         everything else: waiting for the channels
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, insert, or_, select

from oversight import schema

STATUSES = ("open", "dissuaded", "escalated", "unreachable", "closed")
CONTACT_RESULTS = {"delivered", "answered", "dissuaded", "refused"}
CHUNK = 500


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def _by_alert(conn: Connection, table, ids: list[str], *extra) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for chunk in _chunks(ids):
        for row in conn.execute(select(table).where(table.c.alert_id.in_(chunk), *extra)).mappings():
            out[row["alert_id"]].append(row)
    return out


def alerts_of_case(conn: Connection, phone: str | None, account: str | None) -> set[str]:
    ids: set[str] = set()
    if phone:
        ids |= set(conn.scalars(select(schema.alerts.c.alert_id).where(schema.alerts.c.phone == phone)))
    if account:
        ids |= set(conn.scalars(select(schema.alert_accounts.c.alert_id).where(schema.alert_accounts.c.account == account)))
    return ids


def refresh(conn: Connection, alert_ids: Iterable[str]) -> None:
    """Recompute alert_status for these alerts (those without an alert record yet are skipped)."""
    ids = sorted(set(alert_ids))
    if not ids:
        return
    versions = _by_alert(conn, schema.alerts, ids)
    accounts = _by_alert(conn, schema.alert_accounts, ids)
    actions = _by_alert(conn, schema.actions, ids)
    outcomes = _by_alert(conn, schema.outcomes, ids)
    escalations = _by_alert(conn, schema.escalations, ids)
    followups = _by_alert(conn, schema.followup_outcomes, ids)
    rows = []
    for alert_id in ids:
        if alert_id not in versions:
            continue
        cases = _cases_for(conn, versions[alert_id], accounts.get(alert_id, []))
        rows.append(derive(versions[alert_id], actions.get(alert_id, []), outcomes.get(alert_id, []),
                           escalations.get(alert_id, []), followups.get(alert_id, []), cases))
    for chunk in _chunks(ids):
        conn.execute(delete(schema.alert_status).where(schema.alert_status.c.alert_id.in_(chunk)))
    if rows:
        conn.execute(insert(schema.alert_status), rows)


def _cases_for(conn: Connection, versions: list, accounts: list) -> list:
    phones = {v["phone"] for v in versions if v["phone"]}
    tokens = {a["account"] for a in accounts}
    conditions = []
    if phones:
        conditions.append(schema.case_reports.c.victim_phone.in_(phones))
    if tokens:
        conditions.append(schema.case_reports.c.victim_account.in_(tokens))
    if not conditions:
        return []
    return list(conn.execute(select(schema.case_reports.c.filed_at).where(or_(*conditions))).mappings())


def derive(versions, actions, outcomes, escalations, followups, cases) -> dict:
    latest = max(versions, key=lambda v: v["version"])
    first_at = min(v["alert_at"] for v in versions)
    outcomes = sorted(outcomes, key=lambda o: (o["finished_at"], o["outcome_id"]))
    escalations = sorted(escalations, key=lambda e: (e["at"], e["escalation_id"]))
    followups = sorted(followups, key=lambda f: (f["visited_at"], f["followup_outcome_id"]))

    reopened_at: datetime | None = None
    for f in followups:
        if f["result"] == "not_dissuaded":
            reopened_at = f["visited_at"]
    last_followup = followups[-1]["result"] if followups else None

    def since_reopen(moment: datetime) -> bool:
        return reopened_at is None or moment > reopened_at

    contacts = [o["finished_at"] for o in outcomes if o["result"] in CONTACT_RESULTS]
    dissuaded = [o["finished_at"] for o in outcomes if o["result"] == "dissuaded"]
    current_dissuaded = [t for t in dissuaded if since_reopen(t)]
    current_escalations = [e for e in escalations if since_reopen(e["at"])]
    case_filed = any(c["filed_at"] >= first_at for c in cases)

    if last_followup == "confirmed" or case_filed or any(e["reason"] == "expired" for e in escalations):
        status = "closed"
    elif current_dissuaded:
        status = "dissuaded"
    elif current_escalations:
        status = "escalated"
    elif outcomes and outcomes[-1]["result"] in ("unreachable", "failed"):
        status = "unreachable"
    else:
        status = "open"

    return dict(
        alert_id=latest["alert_id"], person_id=latest["person_id"], version=latest["version"], tier=latest["tier"],
        typology=latest["typology"], county=latest["county"], station=latest["station"], grid=latest["grid"],
        alert_at=first_at, status=status, channels=",".join(sorted({a["channel"] for a in actions})),
        first_contact_at=min(contacts) if contacts else None,
        dissuaded_at=min(current_dissuaded) if current_dissuaded else None,
        sla_breaches=len(breached_actions(actions, outcomes, escalations)), escalations=len(escalations),
        reopened=reopened_at is not None, case_filed=case_filed,
    )


def breached_actions(actions, outcomes, escalations) -> set[str]:
    """Actions whose first outcome came after the deadline, or that escalate called an SLA breach."""
    first_outcome: dict[str, datetime] = {}
    for o in outcomes:
        first_outcome.setdefault(o["action_id"], o["finished_at"])
    late = {a["action_id"] for a in actions if a["action_id"] in first_outcome
            and first_outcome[a["action_id"]] > a["deadline"]}
    return late | {e["trigger"] for e in map(_payload_trigger, escalations) if e["reason"] == "sla_breach"}


def _payload_trigger(escalation) -> dict:
    return {"reason": escalation["reason"], "trigger": json.loads(escalation["payload"]).get("trigger", "")}
