"""Reverse-audit explanations (预警成案倒查: why a warned resident became a case anyway): who owes one,
and whether it is written, still awaited, or overdue.

An audit (oversight/audit.py) names the units whose steps broke and the stations of the resident's
alerts; each such station or county bureau writes one explanation at the desk
(oversight/desk/explanations.py) within `desk_explanation_due_s` of the audit. The console's audit
view shows every audit's explanations with their state, and lists the overdue ones for the centre.
Audits are rebuilt from topics; explanations are the units' own words and are not (like access_log).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from oversight import schema
from oversight.access import Unit
from oversight.db import utc

WRITTEN, AWAITED, OVERDUE = "written", "awaited", "overdue"
STATES = (WRITTEN, AWAITED, OVERDUE)
EXPLAINING_ROLES = ("station", "county")  # banks answer through their acknowledgements, the centre reads


def owing_units(record: dict) -> list[str]:
    """The units that owe this audit an explanation: the stations of the resident's alerts, and every
    station or county bureau a finding names."""
    named = {f["unit"] for f in record["findings"] if f["unit"].partition(":")[0] in EXPLAINING_ROLES}
    return sorted(set(record["responsible_units"]) | named)


def due_at(record: dict, due_s: int) -> datetime:
    """Naive UTC, as the ledger keeps times."""
    return utc(datetime.fromisoformat(record["audited_at"])) + timedelta(seconds=due_s)


def sees(unit: Unit, owing: str, audit_county: str) -> bool:
    """May this unit see (and, if it is the owing unit, write) this explanation? The centre sees all,
    a county bureau its own and its stations' (by the audited case's county), anyone else its own."""
    if unit.role == "centre" or owing == unit.name:
        return True
    return unit.role == "county" and audit_county == unit.code and owing.startswith("station:")


def explanations(conn: Connection, audit_rows, due_s: int, now: datetime, unit: Unit | None = None
                 ) -> dict[str, list[dict]]:
    """audit id -> one entry per owing unit (the ones `unit` sees, if given): state, due time, and the
    explanation once written."""
    records = {r["audit_id"]: (json.loads(r["payload"]), r["county"]) for r in audit_rows}
    if not records:
        return {}
    e = schema.audit_explanations
    written = {(w["audit_id"], w["unit"]): w for w in conn.execute(
        select(e).where(e.c.audit_id.in_(list(records)))).mappings()}
    out: dict[str, list[dict]] = {}
    for audit_id, (record, county) in records.items():
        due = due_at(record, due_s)
        entries = []
        for owing in owing_units(record):
            if unit is not None and not sees(unit, owing, county):
                continue
            w = written.get((audit_id, owing))
            entry = {"audit_id": audit_id, "unit": owing, "due_at": _iso(due),
                     "state": WRITTEN if w else (OVERDUE if now >= due else AWAITED),
                     "seconds_left": int((due - now).total_seconds())}
            if w:
                entry.update(text=w["text"], written_by=w["written_by"], written_at=_iso(w["written_at"]),
                             late=w["written_at"] > due)
            entries.append(entry)
        out[audit_id] = entries
    return out


def _iso(at: datetime) -> str:
    return at.isoformat() + "+00:00"
