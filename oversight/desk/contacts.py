"""Earlier contacts with the resident of a task, for the person about to call or knock:

    GET /api/desk/tasks/{task_id}/contacts     every outcome the ledger holds for the task's resident
                                               (any alert, any channel), newest first

Read from the ledger's `outcomes` (what the gateways and the desk answered); the words are the
gateway's or the desk's note, which never carry a phone number (the Outcome contract). Visible
exactly when the task is (another unit's task answers 404, as in oversight/desk/api.py).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select

from oversight import schema
from oversight.db import aware
from oversight.desk.api import DeskApi, TaskId
from oversight.desk.people import Caller
from oversight.desk.tasks import find_task

LIMIT = 50  # a resident warned more often than this is shown the latest ones


def contacts_router(desk: DeskApi) -> APIRouter:
    router = APIRouter(prefix="/api/desk", tags=["desk"])

    @router.get("/tasks/{task_id}/contacts", summary="Earlier contacts with the task's resident, newest first")
    def contacts(task_id: TaskId, caller: Caller = Depends(desk.caller)) -> dict:
        o = schema.outcomes
        with desk.engine.connect() as conn:
            task = find_task(conn, caller.unit, task_id)
            if task is None:
                raise HTTPException(404, "no such task held by your unit")
            rows = conn.execute(select(o.c.outcome_id, o.c.alert_id, o.c.channel, o.c.result, o.c.finished_at,
                                       o.c.payload)
                                .where(o.c.person_id == task["person_id"], o.c.outcome_id != task_id)
                                .order_by(o.c.finished_at.desc(), o.c.outcome_id).limit(LIMIT)).mappings().all()
        return {"items": [_contact(r) for r in rows]}

    return router


def _contact(row) -> dict:
    payload = json.loads(row["payload"])
    return {"alert_id": row["alert_id"], "channel": row["channel"], "result": row["result"],
            "finding": payload.get("finding"), "finished_at": aware(row["finished_at"]).isoformat(),
            "detail": payload.get("detail", "")}
