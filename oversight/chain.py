"""The warning chain of a person or an alert, read from the ledger, as ordered steps with
the unit that held each: signals -> alert -> actions -> outcomes -> escalations -> bank and
carrier requests -> acks -> follow-ups. Shared by the dashboard's timeline and the audit.

Summaries carry codes and results, never a phone number, account or name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, or_, select

from oversight import schema
from oversight.contracts import AuditStep, StepKind
from oversight.db import aware

AUTOMATIC_CHANNELS = {"sms", "ai_voice", "app_push"}


def channel_unit(channel: str, payload: dict) -> str:
    """The unit that carries out an action on this channel."""
    if channel == "police_visit":
        station = (payload.get("target") or {}).get("station") or (payload.get("jurisdiction") or {}).get("station")
        return f"station:{station or 'unknown'}"
    if channel == "hotline_call":
        return "centre:96110"
    if channel == "line_suspension":
        return f"carrier:{(payload.get('target') or {}).get('carrier') or 'unknown'}"
    return "centre:automatic"


@dataclass
class Chain:
    """Everything the ledger holds for some alerts, and the steps in time order."""

    alerts: list[dict] = field(default_factory=list)  # every version
    actions: list[dict] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)
    escalations: list[dict] = field(default_factory=list)
    bank_requests: list[dict] = field(default_factory=list)  # with "alert_id"
    bank_acks: list[dict] = field(default_factory=list)
    carrier_requests: list[dict] = field(default_factory=list)
    followup_tasks: list[dict] = field(default_factory=list)
    followup_outcomes: list[dict] = field(default_factory=list)

    @property
    def alert_ids(self) -> list[str]:
        return list(dict.fromkeys(a["alert_id"] for a in sorted(self.alerts, key=lambda a: a["alert_at"])))

    def unit_of_action(self, action_id: str, channel: str | None = None) -> str:
        for a in self.actions:
            if a["action_id"] == action_id:
                return channel_unit(a["channel"], json.loads(a["payload"]))
        return channel_unit(channel, {}) if channel else "unknown"  # the action is not in the ledger (yet)

    def steps(self) -> list[AuditStep]:
        steps: list[AuditStep] = []
        seen_events: set[str] = set()
        for a in sorted(self.alerts, key=lambda a: (a["alert_at"], a["version"])):
            record = json.loads(a["payload"])
            late = record.get("reach_back") or {}
            for fired in record["signals"]:
                for event_id in fired["event_ids"]:
                    if event_id in seen_events:
                        continue  # a later version repeats its evidence
                    seen_events.add(event_id)
                    # The contact a late listing caught is placed at its own time, before the listing.
                    at = (datetime.fromisoformat(late["contacted_at"]) if event_id == late.get("event_id")
                          else a["first_signal_at"])
                    steps.append(_step(at, StepKind.signal, event_id, "centre:detection",
                                       f"{fired['rule']}: {fired.get('detail', '')}".strip(": "), a["alert_id"]))
            steps.append(_step(a["alert_at"], StepKind.alert, f"{a['alert_id']}:v{a['version']}",
                               f"station:{a['station']}",
                               f"{a['tier']} {a['typology']} alert (v{a['version']}, score {a['score']:.0f}) "
                               f"for {a['county']}/{a['station']}{retro_note(record)}", a["alert_id"]))
        for a in self.actions:
            payload = json.loads(a["payload"])
            steps.append(_step(a["created_at"] or a["deadline"], StepKind.action, a["action_id"],
                               channel_unit(a["channel"], payload),
                               f"{a['channel']} ({a['reason']}, attempt {a['attempt']}), due "
                               f"{aware(a['deadline']).isoformat()}{desk_note(payload)}", a["alert_id"]))
        for o in self.outcomes:
            steps.append(_step(o["finished_at"], StepKind.outcome, o["outcome_id"],
                               self.unit_of_action(o["action_id"], o["channel"]),
                               f"{o['channel']}: {o['result']}{carried_note(json.loads(o['payload']))}",
                               o["alert_id"]))
        for e in self.escalations:
            steps.append(_step(e["at"], StepKind.escalation, e["escalation_id"], "centre:escalation",
                               f"escalated: {e['reason']}", e["alert_id"]))
        for r in self.bank_requests:
            steps.append(_step(r["issued_at"], StepKind.bank_request, r["request_id"], f"bank:{r['bank']}",
                               f"{r['kind']} {r['reason_code']}", r.get("alert_id")))
        for k in self.bank_acks:
            steps.append(_step(k["acked_at"], StepKind.bank_ack, k["request_id"], f"bank:{k['bank']}",
                               f"ack {k['status']}" + (f" ({k['reason']})" if k["reason"] else ""), None))
        for r in self.carrier_requests:
            steps.append(_step(r["issued_at"], StepKind.carrier_request, r["request_id"], f"carrier:{r['carrier']}",
                               f"suspend line ({r['reason_code']})", None))
        for f in self.followup_outcomes:
            steps.append(_step(f["visited_at"], StepKind.followup, f["followup_outcome_id"], f"station:{f['station']}",
                               f"follow-up visit: {f['result']}", f["alert_id"]))
        steps.sort(key=lambda s: (s.at, _ORDER[s.kind], s.ref))
        return steps


_ORDER = {kind: n for n, kind in enumerate(StepKind)}


def desk_note(action: dict) -> str:
    """A visit sent to a duty desk (值班台) says why: no station could be placed for the person."""
    reason = (action.get("target") or {}).get("station_reason")
    return f"; {reason}" if reason else ""


CARRIED_BY = "carried by the visit for alert "  # how channels/visits.py begins a carried visit's detail


def carried_note(outcome: dict) -> str:
    """A visit another alert's visit carried names that alert (the rest of the detail is the gateway's words)."""
    detail = outcome.get("detail") or ""
    if not detail.startswith(CARRIED_BY):
        return ""
    return f" ({CARRIED_BY}{detail[len(CARRIED_BY):].split(' ', 1)[0]})"


def retro_note(record: dict) -> str:
    """For a version raised by late intelligence (回溯预警): the entry's list and source, and both times."""
    late = record.get("reach_back")
    if not late:
        return ""
    return (f"; retro alert (回溯预警): {late['kind']} entry listed at {late['listed_at']} by {late['source']}, "
            f"contacted at {late['contacted_at']} ({late['event_id']})")


def _step(at: datetime, kind: StepKind, ref: str, unit: str, summary: str, alert_id: str | None) -> AuditStep:
    return AuditStep(at=aware(at), kind=kind, ref=ref, unit=unit, summary=summary, alert_id=alert_id)


def _rows(conn: Connection, statement) -> list[dict]:
    return [dict(r) for r in conn.execute(statement).mappings()]


def load_chain(conn: Connection, alert_ids: list[str]) -> Chain:
    """Every record of these alerts, with the bank requests their escalations set off (or on their accounts)
    and the carrier requests for their phones."""
    if not alert_ids:
        return Chain()
    t = schema
    alerts = _rows(conn, select(t.alerts).where(t.alerts.c.alert_id.in_(alert_ids)))
    chain = Chain(
        alerts=alerts,
        actions=_rows(conn, select(t.actions).where(t.actions.c.alert_id.in_(alert_ids))),
        outcomes=_rows(conn, select(t.outcomes).where(t.outcomes.c.alert_id.in_(alert_ids))),
        escalations=_rows(conn, select(t.escalations).where(t.escalations.c.alert_id.in_(alert_ids))),
        followup_tasks=_rows(conn, select(t.followup_tasks).where(t.followup_tasks.c.alert_id.in_(alert_ids))),
        followup_outcomes=_rows(conn, select(t.followup_outcomes).where(t.followup_outcomes.c.alert_id.in_(alert_ids))),
    )
    first_at = min(a["alert_at"] for a in alerts)
    linked = {r["request_id"]: r["alert_id"] for r in _rows(
        conn, select(t.bank_request_alerts).where(t.bank_request_alerts.c.alert_id.in_(alert_ids)))}
    accounts = {r["account"] for r in _rows(conn, select(t.alert_accounts.c.account).where(
        t.alert_accounts.c.alert_id.in_(alert_ids)))}
    conditions = [t.bank_requests.c.request_id.in_(linked)] if linked else []
    if accounts:
        conditions.append(t.bank_requests.c.account.in_(accounts) & (t.bank_requests.c.issued_at >= first_at))
    if conditions:
        for r in _rows(conn, select(t.bank_requests).where(or_(*conditions))):
            r["alert_id"] = linked.get(r["request_id"])
            chain.bank_requests.append(r)
    request_ids = [r["request_id"] for r in chain.bank_requests]
    if request_ids:
        chain.bank_acks = _rows(conn, select(t.bank_acks).where(t.bank_acks.c.request_id.in_(request_ids)))
    phones = {a["phone"] for a in alerts if a["phone"]}
    if phones:
        chain.carrier_requests = _rows(conn, select(t.carrier_requests).where(
            t.carrier_requests.c.phone.in_(phones), t.carrier_requests.c.issued_at >= first_at))
    return chain
