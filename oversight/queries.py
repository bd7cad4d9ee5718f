"""Filtered, paginated, sorted warning lists and one warning's timeline, within a unit's scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from sqlalchemy import Connection, and_, case, exists, func, select

from oversight import schema
from oversight.access import Unit
from oversight.chain import load_chain
from oversight.db import aware, utc
from oversight.status import STATUSES

AlertStatus = Enum("AlertStatus", {s: s for s in STATUSES}, type=str)
TIER_RANK = {"low": 1, "medium": 2, "high": 3, "funds_warning": 4}


class SortKey(str, Enum):
    alert_at = "alert_at"
    alert_at_desc = "-alert_at"
    tier = "tier"
    tier_desc = "-tier"
    county = "county"
    station = "station"
    status = "status"
    typology = "typology"


@dataclass
class Filters:
    """The filters every list and statistic takes; the unit's scope is always added."""

    since: datetime | None = None
    until: datetime | None = None
    typology: list[str] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)
    county: str | None = None
    station: str | None = None
    grid: str | None = None
    status: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    retro: bool | None = None  # True: retro alerts only (回溯预警, oversight.retro_alerts); False: the others

    def on_alerts(self, unit: Unit) -> list:
        s = schema.alert_status.c
        conditions = [unit.scope(schema.alert_status)]
        if self.since:
            conditions.append(s.alert_at >= utc(self.since))
        if self.until:
            conditions.append(s.alert_at < utc(self.until))
        for column, values in ((s.typology, self.typology), (s.tier, self.tier), (s.status, self.status)):
            if values:
                conditions.append(column.in_(values))
        for column, value in ((s.county, self.county), (s.station, self.station), (s.grid, self.grid)):
            if value:
                conditions.append(column == value)
        if self.channel:
            a = schema.actions.c
            conditions.append(exists(select(a.action_id).where(a.alert_id == s.alert_id, a.channel.in_(self.channel))
                                     .correlate(schema.alert_status)))
        if self.retro is not None:
            rb = schema.alert_reach_back.c
            # Correlated on alert_status only: in a query that also reads alert_reach_back (the reach-back
            # stats) auto-correlation took both tables out of the subquery and left it no FROM.
            retro = exists(select(rb.alert_id).where(rb.alert_id == s.alert_id).correlate(schema.alert_status))
            conditions.append(retro if self.retro else ~retro)
        return conditions

    def period(self, time_column) -> list:
        conditions = []
        if self.since:
            conditions.append(time_column >= utc(self.since))
        if self.until:
            conditions.append(time_column < utc(self.until))
        return conditions

    def on_area_table(self, unit: Unit, table, time_column) -> list:
        """For tables with county/station and a time (cases, audits): scope, area and period only."""
        conditions = [unit.scope(table), *self.period(time_column)]
        if self.county:
            conditions.append(table.c.county == self.county)
        if self.station:
            conditions.append(table.c.station == self.station)
        return conditions


def _order(sort: SortKey):
    s = schema.alert_status.c
    rank = case(TIER_RANK, value=s.tier, else_=0)
    return {
        SortKey.alert_at: [s.alert_at, s.alert_id],
        SortKey.alert_at_desc: [s.alert_at.desc(), s.alert_id],
        SortKey.tier: [rank, s.alert_at.desc(), s.alert_id],
        SortKey.tier_desc: [rank.desc(), s.alert_at.desc(), s.alert_id],
        SortKey.county: [s.county, s.station, s.alert_at.desc(), s.alert_id],
        SortKey.station: [s.station, s.alert_at.desc(), s.alert_id],
        SortKey.status: [s.status, s.alert_at.desc(), s.alert_id],
        SortKey.typology: [s.typology, s.alert_at.desc(), s.alert_id],
    }[sort]


def latest_phones(conn: Connection, alert_ids: list[str]) -> dict[str, str | None]:
    a = schema.alerts.c
    latest = select(a.alert_id, func.max(a.version).label("v")).where(a.alert_id.in_(alert_ids)).group_by(a.alert_id)
    latest = latest.subquery()
    rows = conn.execute(select(a.alert_id, a.phone).join(latest, and_(a.alert_id == latest.c.alert_id,
                                                                      a.version == latest.c.v)))
    return {alert_id: phone for alert_id, phone in rows}


def status_dict(row) -> dict:
    out = dict(row)
    for key in ("alert_at", "first_contact_at", "dissuaded_at"):
        out[key] = aware(out[key])
    out["channels"] = [c for c in out["channels"].split(",") if c]
    return out


def list_alerts(conn: Connection, unit: Unit, filters: Filters, page: int, page_size: int,
                sort: SortKey) -> tuple[int, list[dict]]:
    conditions = filters.on_alerts(unit)
    total = conn.execute(select(func.count()).select_from(schema.alert_status).where(*conditions)).scalar_one()
    rows = conn.execute(select(schema.alert_status).where(*conditions).order_by(*_order(sort))
                        .limit(page_size).offset((page - 1) * page_size)).mappings().all()
    return total, [status_dict(r) for r in rows]


def find_alert(conn: Connection, unit: Unit, alert_id: str) -> dict | None:
    row = conn.execute(select(schema.alert_status).where(schema.alert_status.c.alert_id == alert_id,
                                                         unit.scope(schema.alert_status))).mappings().first()
    return status_dict(row) if row else None


def timeline(conn: Connection, alert_id: str) -> list[dict]:
    """signals -> alert versions -> actions -> outcomes -> escalations -> requests -> follow-ups, in time order."""
    chain = load_chain(conn, [alert_id])
    return [{"at": s.at, "kind": s.kind.value, "ref": s.ref, "unit": s.unit, "summary": s.summary}
            for s in chain.steps()]
