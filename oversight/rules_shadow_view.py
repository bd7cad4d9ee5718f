"""The console's comparison of the live rules with the candidate in shadow (docs/rules.md, Shadow).

    GET /api/rules/shadow?minutes=15   live vs candidate over the shadow's window

The window runs from when the candidate was put in shadow (or `minutes` ago, whichever is
later) to now, or to when it was stopped. Both sides are counted the same way, as alert
versions per tier and per warning type, and persons warned; contacts are what the pure
routing plan (streams.dissuasion.plan_for_alert, as the backtest applies it) would send for
each side's alerts: the live alerts with the routing of the version in force, the candidate's
with its own routing. Scoped to the unit's jurisdiction, as the alerts are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine, select

from backtest.replay import VersionRun
from oversight import schema
from oversight.access import Unit
from streams.contracts.alerts import Alert
from streams.contracts.rules_versions import RulesShadow, RulesVersion
from streams.routing import Partners, get_partners
from streams.rules_versions import RuleSet, is_valid, rule_set_of, shipped_rule_set
from streams.settings import Settings

DECODE_ALERT = msgspec.json.Decoder(Alert).decode
DECODE_SHADOW = msgspec.json.Decoder(RulesShadow).decode
DECODE_VERSION = msgspec.json.Decoder(RulesVersion).decode
LISTED_PERSONS = 20  # persons named per side in the answer (the counts are complete)


@dataclass
class Side:
    """One side's alerts in the window, counted as the backtest counts a version's run."""

    run: VersionRun

    @classmethod
    def of(cls, rule_set: RuleSet, partners: Partners, alerts: list[Alert]) -> Side:
        run = VersionRun(rule_set.version, rule_set.rules, rule_set.routing, partners)
        for alert in alerts:
            run.take([alert], alert.alert_at.timestamp())
        return cls(run)

    @property
    def persons(self) -> set[str]:
        return {a.person_id for a in self.run.alerts}

    def summary(self) -> dict:
        tiers: dict[str, int] = {}
        types: dict[str, int] = {}
        for a in self.run.alerts:
            tiers[a.tier.value] = tiers.get(a.tier.value, 0) + 1
            types[a.typology.value] = types.get(a.typology.value, 0) + 1
        return {"version": self.run.name, "alerts": len(self.run.alerts), "persons": len(self.persons),
                "tiers": tiers, "typologies": types,
                "contacts": {ch.value: n for ch, n in sorted(self.run.actions.items(), key=lambda kv: kv[0].value)}}


def comparison(live: Side, candidate: Side) -> dict:
    """Side by side: the counts, the persons only one side warns, the contacts added or avoided per channel."""
    only_live, only_candidate = sorted(live.persons - candidate.persons), sorted(candidate.persons - live.persons)
    channels = sorted({ch.value for ch in live.run.actions} | {ch.value for ch in candidate.run.actions})
    contacts = []
    for channel in channels:
        was = sum(n for ch, n in live.run.actions.items() if ch.value == channel)
        would = sum(n for ch, n in candidate.run.actions.items() if ch.value == channel)
        contacts.append({"channel": channel, "live": was, "shadow": would,
                         "added": max(0, would - was), "avoided": max(0, was - would)})
    return {"live": live.summary(), "shadow": candidate.summary(),
            "only_live": {"count": len(only_live), "persons": only_live[:LISTED_PERSONS]},
            "only_shadow": {"count": len(only_candidate), "persons": only_candidate[:LISTED_PERSONS]},
            "contacts": contacts}


def router(settings: Settings, engine: Engine, unit_of) -> APIRouter:
    api = APIRouter()

    @api.get("/api/rules/shadow", summary="Live rules vs the candidate in shadow: alerts, persons, contacts per channel")
    def shadow(minutes: int = Query(15, ge=1, le=7 * 24 * 60, description="At most this far back from the end."),
               unit: Unit = Depends(unit_of)) -> dict:
        with engine.connect() as conn:
            settings_rows = conn.execute(select(schema.rules_shadows.c.payload)
                                         .order_by(schema.rules_shadows.c.set_at)).all()
            settings_seen = [DECODE_SHADOW(r.payload) for r in settings_rows]
            started = next((s for s in reversed(settings_seen) if s.candidate is not None and is_valid(s.candidate)), None)
            if started is None:
                return {"running": False, "candidate": None}
            stopped = next((s for s in settings_seen if s.set_at > started.set_at), None)
            until = stopped.set_at if stopped is not None else datetime.now(UTC)
            since = max(started.set_at, until - timedelta(minutes=minutes))
            live_rows = _alerts(conn, schema.alerts, unit, since, until)
            sa = schema.shadow_alerts
            shadow_rows = _alerts(conn, sa, unit, since, until, sa.c.rules_version == started.candidate.version)
            live_set = _in_force(conn)
        partners = get_partners(settings)
        body = comparison(Side.of(live_set, partners, live_rows),
                          Side.of(rule_set_of(started.candidate), partners, shadow_rows))
        return {"running": stopped is None, "candidate": started.candidate.version, "set_by": started.set_by,
                "why": started.why, "since": since.isoformat(), "until": until.isoformat(), **body}

    return api


def _alerts(conn, table, unit: Unit, since: datetime, until: datetime, *where) -> list[Alert]:
    naive = [t.astimezone(UTC).replace(tzinfo=None) for t in (since, until)]  # the ledger keeps naive UTC
    rows = conn.execute(select(table.c.payload).where(unit.scope(table), table.c.alert_at >= naive[0],
                                                      table.c.alert_at < naive[1], *where)
                        .order_by(table.c.alert_at)).all()
    return [DECODE_ALERT(r.payload) for r in rows]


def _in_force(conn) -> RuleSet:
    """The version in force, as the workers hold it: the last valid publication, else the shipped files."""
    rp = schema.rules_publications
    rows = conn.execute(select(rp.c.payload).order_by(rp.c.published_at, rp.c.publication_id)).all()
    valid = [v for v in (DECODE_VERSION(r.payload) for r in rows) if is_valid(v)]
    return rule_set_of(valid[-1]) if valid else shipped_rule_set()
