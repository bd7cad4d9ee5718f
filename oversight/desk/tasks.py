"""Desk tasks in the ledger database: which unit holds one, recording it once, what a unit sees.

A task's id is the outcome id of its action attempt (`<action id>:<attempt>`), so recording
the same action twice (a redelivery, a replay) is the same row, and the outcome the desk
produces for it has the id the rest of the platform expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, insert, or_, select, true

from oversight import schema
from oversight.access import Unit
from oversight.db import utc
from streams.contracts.actions import Action, Channel
from streams.routing import DutyDesks

OPEN, CLOSING, CLOSED = "open", "closing", "closed"


@dataclass(frozen=True)
class Holder:
    role: str  # station, county, centre, hotline
    code: str

    @property
    def name(self) -> str:
        return f"{self.role}:{self.code}" if self.code else self.role


def holder_of(action: Action, desks: DutyDesks, hotline_team: str) -> Holder:
    """The unit the action was routed to: the hotline team for calls; for visits the station, or the
    county bureau or city centre whose duty desk (值班台) the visit went to."""
    if action.channel is Channel.hotline_call:
        return Holder("hotline", hotline_team)
    station = action.target.station or action.jurisdiction.station
    if station == desks.city_centre:
        return Holder("centre", "")
    county = next((c for c, desk in desks.counties.items() if desk == station), None)
    return Holder("county", county) if county is not None else Holder("station", station)


def record_task(conn: Connection, action: Action, task_id: str, holder: Holder, now: datetime) -> bool:
    """Insert the task unless it exists; True when it is new."""
    exists = conn.execute(select(schema.desk_tasks.c.task_id).where(schema.desk_tasks.c.task_id == task_id)).first()
    if exists is not None:
        return False
    where = action.jurisdiction
    conn.execute(insert(schema.desk_tasks).values(
        task_id=task_id, action_id=action.action_id, alert_id=action.alert_id, alert_version=action.alert_version,
        person_id=action.person_id, channel=action.channel.value, tier=action.tier.value,
        typology=action.typology.value, priority=action.priority, deadline=utc(action.deadline),
        script_key=action.script_key[:64], attempt=action.attempt, holder_role=holder.role,
        holder_code=holder.code, county=where.county, station=where.station, grid=where.grid,
        phone=action.target.phone if action.channel is Channel.hotline_call else None,
        station_reason=action.target.station_reason, created_at=utc(now), state=OPEN,
    ))
    return True


def visible_to(unit: Unit):
    """SQL condition: the tasks a unit may see and act on. The centre sees all; a county its own
    duty-desk tasks and its stations' visits; a station or the hotline team what it holds."""
    t = schema.desk_tasks.c
    if unit.role == "centre":
        return true()
    held = and_(t.holder_role == unit.role, t.holder_code == unit.code)
    if unit.role == "county":
        return or_(held, and_(t.holder_role == "station", t.county == unit.code))
    return held


def find_task(conn: Connection, unit: Unit, task_id: str):
    """The task's row if the unit may see it, else None (another unit's task is as good as absent)."""
    t = schema.desk_tasks
    return conn.execute(select(t).where(t.c.task_id == task_id, visible_to(unit))).mappings().first()


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
