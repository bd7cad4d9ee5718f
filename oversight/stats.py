"""The statistics of the console; docs/oversight.md says what each one means.

Each takes the caller's unit (its scope is always applied) and the common filters, and
aggregates narrow columns in Python: a city's alerts of a period are thousands of rows.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, or_, select

from oversight import schema
from oversight.access import Unit
from oversight.chain import channel_unit
from oversight.db import aware, utc
from oversight.queries import Filters

HIGH_RISK_TIERS = ("high", "funds_warning")
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def bucket_start(moment: datetime, bucket: str, tz: ZoneInfo) -> str:
    local = aware(moment).astimezone(tz)
    if bucket == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if bucket == "week":
            start -= timedelta(days=start.weekday())
    return start.isoformat()


def _alert_rows(conn: Connection, unit: Unit, filters: Filters, *columns):
    s = schema.alert_status.c
    return conn.execute(select(*(getattr(s, c) for c in columns)).where(*filters.on_alerts(unit))).all()


# ------------------------------------------------------------------ warnings
def warning_counts(conn: Connection, unit: Unit, filters: Filters, bucket: str, area: str, tz: ZoneInfo) -> dict:
    """Warnings (alerts, counted once whatever their versions) by type, by area and by time bucket."""
    rows = _alert_rows(conn, unit, filters, "typology", "county", "station", "grid", "alert_at", "tier")
    by_type, by_area, by_time, by_tier = Counter(), Counter(), Counter(), Counter()
    for typology, county, station, grid, alert_at, tier in rows:
        by_type[typology] += 1
        by_tier[tier] += 1
        by_area[{"county": county, "station": f"{county}/{station}", "grid": f"{county}/{station}/{grid}"}[area]] += 1
        by_time[bucket_start(alert_at, bucket, tz)] += 1
    return {
        "total": len(rows),
        "by_type": _ranked(by_type, "typology"),
        "by_tier": _ranked(by_tier, "tier"),
        "by_area": _ranked(by_area, "area"),
        "by_time": [{"bucket": b, "count": n} for b, n in sorted(by_time.items())],
        "bucket": bucket,
        "area_level": area,
    }


def _ranked(counter: Counter, key: str) -> list[dict]:
    return [{key: k, "count": n} for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def high_risk_areas(conn: Connection, unit: Unit, filters: Filters, limit: int) -> list[dict]:
    """Stations ranked by high-risk and funds warnings plus fraud cases filed there."""
    areas: dict[tuple[str, str], dict] = defaultdict(lambda: {"alerts": 0, "high_risk_alerts": 0, "cases": 0,
                                                              "losses": Decimal("0")})
    for county, station, tier in _alert_rows(conn, unit, filters, "county", "station", "tier"):
        area = areas[(county, station)]
        area["alerts"] += 1
        area["high_risk_alerts"] += tier in HIGH_RISK_TIERS
    c = schema.case_reports
    for county, station, loss in conn.execute(select(c.c.county, c.c.station, c.c.loss_amount).where(
            *filters.on_area_table(unit, c, c.c.filed_at))):
        areas[(county, station)]["cases"] += 1
        areas[(county, station)]["losses"] += Decimal(loss or 0)
    ranked = sorted(areas.items(), key=lambda kv: (-(kv[1]["high_risk_alerts"] + kv[1]["cases"]), kv[0]))
    return [{"county": k[0], "station": k[1], **v, "risk_index": v["high_risk_alerts"] + v["cases"],
             "losses": str(v["losses"])} for k, v in ranked[:limit]]


def case_types(conn: Connection, unit: Unit, filters: Filters) -> list[dict]:
    """High-incidence case types: cases filed by typology, their losses, and how many victims had been warned."""
    c = schema.case_reports
    rows = conn.execute(select(c.c.case_id, c.c.typology, c.c.loss_amount).where(
        *filters.on_area_table(unit, c, c.c.filed_at))).all()
    audited = set(conn.scalars(select(schema.audits.c.case_id).where(
        schema.audits.c.case_id.in_([r[0] for r in rows])))) if rows else set()
    types: dict[str, dict] = defaultdict(lambda: {"cases": 0, "losses": Decimal("0"), "warned_before": 0})
    for case_id, typology, loss in rows:
        types[typology]["cases"] += 1
        types[typology]["losses"] += Decimal(loss or 0)
        types[typology]["warned_before"] += case_id in audited
    ranked = sorted(types.items(), key=lambda kv: (-kv[1]["cases"], -kv[1]["losses"], kv[0]))
    return [{"typology": k, **v, "losses": str(v["losses"])} for k, v in ranked]


# ------------------------------------------------------------------ dissuasion
def _verdict(status: str, dissuaded_at, case_filed: bool, reopened: bool) -> str:
    """success, failure or pending, for the success rate."""
    if case_filed:
        return "failure"
    if dissuaded_at is not None and status in ("dissuaded", "closed"):
        return "success"
    if status in ("escalated", "unreachable") or (status == "open" and reopened):
        return "failure"
    return "pending"


def dissuasion(conn: Connection, unit: Unit, filters: Filters, bucket: str, tz: ZoneInfo, target: float) -> dict:
    """Success rate (dissuaded / concluded), and volume and success rate per time bucket."""
    rows = _alert_rows(conn, unit, filters, "alert_at", "status", "dissuaded_at", "case_filed", "reopened")
    totals = Counter()
    per_bucket: dict[str, Counter] = defaultdict(Counter)
    for alert_at, status, dissuaded_at, case_filed, reopened in rows:
        verdict = _verdict(status, dissuaded_at, case_filed, reopened)
        totals[verdict] += 1
        per_bucket[bucket_start(alert_at, bucket, tz)][verdict] += 1
    return {
        "alerts": len(rows), **{k: totals[k] for k in ("success", "failure", "pending")},
        "success_rate": _rate(totals), "target": target,
        "by_time": [{"bucket": b, "alerts": sum(c.values()), "success": c["success"], "failure": c["failure"],
                     "pending": c["pending"], "success_rate": _rate(c)} for b, c in sorted(per_bucket.items())],
    }


def _rate(counts: Counter) -> float | None:
    concluded = counts["success"] + counts["failure"]
    return round(counts["success"] / concluded, 4) if concluded else None


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def first_contact(conn: Connection, unit: Unit, filters: Filters) -> dict:
    """Seconds from the alert to the first outcome that reached the person, as percentiles, overall and per tier."""
    rows = _alert_rows(conn, unit, filters, "tier", "alert_at", "first_contact_at")
    per_tier: dict[str, list[float]] = defaultdict(list)
    never = Counter()
    for tier, alert_at, contact_at in rows:
        if contact_at is None:
            never[tier] += 1
        else:
            per_tier[tier].append(max(0.0, (contact_at - alert_at).total_seconds()))
    everything = sorted(v for values in per_tier.values() for v in values)

    def summary(values: list[float], not_reached: int) -> dict:
        values = sorted(values)
        return {"contacted": len(values), "not_contacted": not_reached,
                **{f"p{p}": percentile(values, p) for p in (50, 90, 95, 99)}}

    return {"all": summary(everything, sum(never.values())),
            "by_tier": {t: summary(per_tier.get(t, []), never[t]) for t in sorted(set(per_tier) | set(never))}}


def sla_breaches(conn: Connection, unit: Unit, filters: Filters, now: datetime | None = None) -> list[dict]:
    """Per unit that held the actions: actions, breaches (outcome after the deadline) and overdue (no outcome yet)."""
    now = utc(now or datetime.now(UTC))
    s, a, o = schema.alert_status.c, schema.actions.c, schema.outcomes.c
    first = select(o.action_id, func.min(o.finished_at).label("first_at")).group_by(o.action_id).subquery()
    rows = conn.execute(
        select(a.channel, a.payload, a.deadline, first.c.first_at)
        .join(schema.alert_status, s.alert_id == a.alert_id)
        .outerjoin(first, first.c.action_id == a.action_id)
        .where(*filters.on_alerts(unit))
    ).all()
    units: dict[str, Counter] = defaultdict(Counter)
    for channel, payload, deadline, first_at in rows:
        counts = units[channel_unit(channel, json.loads(payload))]
        counts["actions"] += 1
        if first_at is not None and first_at > deadline:
            counts["breached"] += 1
        elif first_at is None and deadline < now:
            counts["overdue"] += 1
    return sorted(({"unit": u, "actions": c["actions"], "breached": c["breached"], "overdue": c["overdue"],
                    "breach_rate": round((c["breached"] + c["overdue"]) / c["actions"], 4)} for u, c in units.items()),
                  key=lambda r: (-(r["breached"] + r["overdue"]), r["unit"]))


def losses(conn: Connection, unit: Unit, filters: Filters) -> dict:
    """Losses reported in cases vs an estimate of losses avoided by successful dissuasions.

    The estimate: each successfully dissuaded warning avoided the average reported loss of
    cases of its warning type in the period (the average over all cases when its type has none).
    """
    c = schema.case_reports
    cases = conn.execute(select(c.c.typology, c.c.loss_amount).where(*filters.on_area_table(unit, c, c.c.filed_at),
                                                                     c.c.loss_amount.is_not(None))).all()
    reported = sum((Decimal(loss) for _, loss in cases), Decimal("0"))
    by_type: dict[str, list[Decimal]] = defaultdict(list)
    for typology, loss in cases:
        by_type[typology].append(Decimal(loss))
    overall = reported / len(cases) if cases else Decimal("0")
    avoided = Decimal("0")
    dissuaded = 0
    for typology, status, dissuaded_at, case_filed, reopened in _alert_rows(
            conn, unit, filters, "typology", "status", "dissuaded_at", "case_filed", "reopened"):
        if _verdict(status, dissuaded_at, case_filed, reopened) == "success":
            dissuaded += 1
            values = by_type.get(typology)
            avoided += (sum(values) / len(values)) if values else overall
    return {"reported": str(reported.quantize(Decimal("0.01"))), "cases_with_loss": len(cases),
            "estimated_avoided": str(avoided.quantize(Decimal("0.01"))), "dissuaded_warnings": dissuaded,
            "basis": "average reported loss per case of the same warning type in the period"}


# ------------------------------------------------------------------ accountability
def audit_findings(conn: Connection, unit: Unit, filters: Filters) -> dict:
    """Broken steps found by reverse audits, per accountable unit and per problem."""
    f, au = schema.audit_findings, schema.audits
    rows = conn.execute(select(f.c.unit, f.c.problem).join(au, au.c.audit_id == f.c.audit_id).where(
        *filters.on_area_table(unit, f, au.c.filed_at))).all()
    visible = or_(unit.scope(au), au.c.audit_id.in_(select(f.c.audit_id).where(unit.scope(f))))
    audits = conn.execute(select(func.count()).select_from(au).where(visible, *filters.period(au.c.filed_at))).scalar_one()
    per_unit: dict[str, Counter] = defaultdict(Counter)
    for u, problem in rows:
        per_unit[u][problem] += 1
    return {"audits": audits, "findings": len(rows),
            "by_unit": sorted(({"unit": u, "findings": sum(c.values()), "problems": dict(c)} for u, c in per_unit.items()),
                              key=lambda r: (-r["findings"], r["unit"])),
            "by_problem": _ranked(Counter(p for _, p in rows), "problem")}


def followups(conn: Connection, unit: Unit, filters: Filters) -> list[dict]:
    """Follow-up visits per station: sampled, confirmed, not actually dissuaded (counts against it), unreachable."""
    t, o = schema.followup_tasks, schema.followup_outcomes
    tasks = conn.execute(select(t.c.task_id, t.c.county, t.c.station).where(
        *filters.on_area_table(unit, t, t.c.period_start))).all()
    results = {task_id: result for task_id, result, _ in sorted(conn.execute(
        select(o.c.task_id, o.c.result, o.c.visited_at).where(o.c.task_id.in_([r[0] for r in tasks]))).all(),
        key=lambda r: r[2])} if tasks else {}
    per: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for task_id, county, station in tasks:
        per[(county, station)]["sampled"] += 1
        per[(county, station)][results.get(task_id, "pending")] += 1
    return [{"county": k[0], "station": k[1], **{r: c[r] for r in ("sampled", "confirmed", "not_dissuaded",
                                                                     "unreachable", "pending")}}
            for k, c in sorted(per.items(), key=lambda kv: (-kv[1]["not_dissuaded"], kv[0]))]
