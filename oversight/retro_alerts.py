"""Retro alerts (回溯预警) in the console: the reach-back facts of alerts, and counts per intel source.

A retro alert is one with a version raised by late intelligence: an entry listed after the
resident touched it (ledger table alert_reach_back, one row per such version). The console marks
them in lists and timelines with both times, and counts per source how many alerts and residents
its listings reached back to. Rows hold the list, the source, the times and an event id: never a
phone number, account or name.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from sqlalchemy import Connection, and_, func, select

from oversight import schema
from oversight.access import Unit
from oversight.db import aware
from oversight.queries import Filters

FUNDS_WARNING = "funds_warning"


def facts(row) -> dict:
    return {"version": row["version"], "kind": row["kind"], "source": row["source"],
            "listed_at": aware(row["listed_at"]), "contacted_at": aware(row["contacted_at"]),
            "event_id": row["event_id"]}


def of_alerts(conn: Connection, alert_ids: list[str]) -> dict[str, list[dict]]:
    """alert id -> its retro versions' facts, oldest version first (absent: not a retro alert)."""
    if not alert_ids:
        return {}
    rb = schema.alert_reach_back
    out: dict[str, list[dict]] = defaultdict(list)
    for row in conn.execute(select(rb).where(rb.c.alert_id.in_(alert_ids)).order_by(rb.c.alert_id, rb.c.version)
                            ).mappings():
        out[row["alert_id"]].append(facts(row))
    return dict(out)


def mark(items: list[dict], found: dict[str, list[dict]]) -> None:
    """Adds `retro` and `reach_back` (the latest retro version's facts, or None) to list items."""
    for item in items:
        versions = found.get(item["alert_id"], [])
        item["retro"] = bool(versions)
        item["reach_back"] = versions[-1] if versions else None


def by_source(conn: Connection, unit: Unit, filters: Filters) -> dict:
    """Per intel source: the alerts and residents its late listings reached back to, within the unit's scope.

    `delay_p50_s` is the median time from the contact to the listing: how late that source's
    intelligence comes. An alert counts once per source however many of its versions it raised.
    """
    rb, s, a = schema.alert_reach_back.c, schema.alert_status.c, schema.alerts.c
    rows = conn.execute(
        select(rb.source, rb.kind, rb.alert_id, rb.person_id, rb.listed_at, rb.contacted_at, a.tier)
        .join(schema.alert_status, s.alert_id == rb.alert_id)
        .join(schema.alerts, and_(a.alert_id == rb.alert_id, a.version == rb.version))
        .where(*filters.on_alerts(unit))
    ).all()
    in_view = conn.execute(select(func.count()).select_from(schema.alert_status)
                           .where(*filters.on_alerts(unit))).scalar_one()
    per: dict[str, dict] = defaultdict(lambda: {"alerts": set(), "residents": set(), "funds": set(),
                                                "lists": defaultdict(set), "delays": []})
    for source, kind, alert_id, person_id, listed_at, contacted_at, tier in rows:
        p = per[source]
        p["alerts"].add(alert_id)
        p["residents"].add(person_id)
        p["lists"][kind].add(alert_id)
        p["delays"].append(max(0.0, (listed_at - contacted_at).total_seconds()))
        if tier == FUNDS_WARNING:
            p["funds"].add(alert_id)
    sources = [{"source": source, "alerts": len(p["alerts"]), "residents": len(p["residents"]),
                "funds_warnings": len(p["funds"]), "by_list": {k: len(v) for k, v in sorted(p["lists"].items())},
                "delay_p50_s": statistics.median(p["delays"])} for source, p in per.items()]
    sources.sort(key=lambda r: (-r["residents"], -r["alerts"], r["source"]))
    return {"alerts_in_view": in_view, "retro_alerts": len({r.alert_id for r in rows}),
            "residents": len({r.person_id for r in rows}), "sources": sources}
