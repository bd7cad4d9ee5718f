"""Reverse-audit explanations as desk work: the accountable unit writes why a warned resident became
a case anyway (oversight/audit_explanations.py says who owes one and by when).

    GET  /api/desk/explanations              what the unit owes (and has written): overdue first
    POST /api/desk/explanations/{audit_id}   write the unit's explanation, once

Signed-in users (not auditors) or a unit token of the owing station or county bureau write; the
centre reads them on its audit view (the console's /api/audits). Every explanation written is a row
in access_log (`field` = `audit_explanation`).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection, insert, or_, select
from sqlalchemy.exc import IntegrityError

from oversight import schema
from oversight.access import Unit
from oversight.audit_explanations import OVERDUE, STATES, WRITTEN, explanations
from oversight.desk.api import DeskApi, _log_write
from oversight.desk.people import Caller
from oversight.desk.tasks import utc_now

AuditId = Annotated[str, Path(max_length=255, description="The reverse audit's id (AUD-<case id>).")]
LISTED = 500  # the newest audits a unit's list looks through


class Explanation(BaseModel):
    text: str = Field(min_length=10, max_length=4000, description="Why the chain broke, in the unit's words.")


def explanation_router(desk: DeskApi) -> APIRouter:
    router = APIRouter(prefix="/api/desk", tags=["desk"])
    due_s = desk.settings.desk_explanation_due_s

    @router.get("/explanations", summary="Reverse-audit explanations the unit owes: overdue first")
    def owed(caller: Caller = Depends(desk.caller),
             state: list[str] = Query([], description=f"Only these states ({', '.join(STATES)}); default: "
                                      "the ones not yet written.")) -> dict:
        wanted = set(state) or set(STATES) - {WRITTEN}
        if wanted - set(STATES):
            raise HTTPException(422, f"state: one of {', '.join(STATES)}")
        with desk.engine.connect() as conn:
            rows = _audits_of(conn, caller.unit)
            found = explanations(conn, rows, due_s, utc_now(), caller.unit)
        by_id = {r["audit_id"]: json.loads(r["payload"]) for r in rows}
        items = [_item(by_id[audit_id], entry) for audit_id, entries in found.items() for entry in entries
                 if entry["state"] in wanted]
        items.sort(key=lambda i: (i["state"] != OVERDUE, i["due_at"], i["audit_id"]))
        return {"total": len(items), "overdue": sum(i["state"] == OVERDUE for i in items), "items": items}

    @router.post("/explanations/{audit_id}", summary="Write the unit's explanation of a reverse audit, once",
                 status_code=201, responses={
                     200: {"description": "The same explanation was written before: nothing new."},
                     404: {"description": "No such audit, or the calling unit owes it no explanation."},
                     409: {"description": "A different explanation was written before; it stands."}})
    def write(audit_id: AuditId, body: Explanation, request: Request, caller: Caller = Depends(desk.caller)):
        if not caller.may_write:
            raise HTTPException(403, f"a {caller.role} reads and does not write")
        with desk.engine.connect() as conn:
            row = conn.execute(select(schema.audits).where(schema.audits.c.audit_id == audit_id)).mappings().first()
            entries = explanations(conn, [row], due_s, utc_now())[audit_id] if row is not None else []
        if caller.unit.name not in {entry["unit"] for entry in entries}:
            raise HTTPException(404, "no such audit awaiting your unit's explanation")
        record = json.loads(row["payload"])
        try:
            with desk.engine.begin() as conn:  # the explanation and its access_log row, together
                conn.execute(insert(schema.audit_explanations).values(
                    audit_id=audit_id, unit=caller.unit.name, text=body.text, written_by=caller.who[:64],
                    written_at=utc_now()))
                _log_write(conn, caller, request.url.path,
                           {"alert_id": record["alert_ids"][0] if record["alert_ids"] else "",
                            "person_id": record["person_id"]}, "audit_explanation")
            written_now = True
        except IntegrityError:  # written before (or by a second writer at the same moment): that one stands
            written_now = False
        with desk.engine.connect() as conn:
            [entry] = [x for x in explanations(conn, [row], due_s, utc_now())[audit_id]
                       if x["unit"] == caller.unit.name]
        body_out = {"audit_id": audit_id, "written_now": written_now, "explanation": entry}
        if written_now:
            return JSONResponse(body_out, status_code=201)
        return JSONResponse(body_out, status_code=200 if entry["text"] == body.text else 409)

    return router


def _audits_of(conn: Connection, unit: Unit):
    """The newest audits that may name this unit (the payload names every owing unit)."""
    au = schema.audits
    query = select(au).order_by(au.c.filed_at.desc(), au.c.audit_id).limit(LISTED)
    if unit.role == "county":
        query = query.where(or_(au.c.county == unit.code, au.c.payload.contains(f'"{unit.name}"')))
    elif unit.role != "centre":
        query = query.where(au.c.payload.contains(f'"{unit.name}"'))
    return conn.execute(query).mappings().all()


def _item(record: dict, entry: dict) -> dict:
    """The explanation's entry with what the unit needs to write it: the case and the unit's broken steps."""
    return {**entry, "case_id": record["case_id"], "typology": record["typology"], "filed_at": record["filed_at"],
            "loss_amount": record.get("loss_amount"),
            "findings": [{"problem": f["problem"], "ref": f.get("ref", ""), "detail": f.get("detail", "")}
                         for f in record["findings"] if f["unit"] == entry["unit"]]}
