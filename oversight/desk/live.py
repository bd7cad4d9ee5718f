"""The task list, live: a page asks once what its unit's open tasks are, and is answered as soon as
they change (a long poll), so a new task shows within a fraction of a second of being recorded
without every open page asking for the whole list several times a second.

    GET /api/desk/changes?since=<stamp>     answers {"stamp"} at once when the caller's open tasks
                                            (which, who has them) are not those `since` stamped;
                                            else when they change, or after `wait_s` (10 s) unchanged

A long poll rather than SSE: the browser's EventSource cannot send the Authorization header the
desk's every call carries. Not under /api/desk/tasks/, where it would be read as a task id.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from oversight import schema
from oversight.access import Unit
from oversight.desk.api import DeskApi
from oversight.desk.people import Caller
from oversight.desk.tasks import OPEN, visible_to

WAIT_S = 10.0  # short enough that a console stopping waits little for its open polls
CHECK_S = 0.25  # how often a waiting poll looks; one query per unit per look, shared by its pages


class Stamps:
    """Each unit's open tasks as a short digest, read at most once per CHECK_S however many pages wait."""

    def __init__(self, desk: DeskApi):
        self.engine = desk.engine
        self.recent: dict[str, tuple[float, str]] = {}

    def of(self, unit: Unit) -> str:
        now = time.monotonic()
        read_at, stamp = self.recent.get(unit.name, (0.0, ""))
        if now - read_at < CHECK_S:
            return stamp
        t = schema.desk_tasks.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.task_id, t.assignee).where(t.state == OPEN, visible_to(unit))
                                .order_by(t.task_id)).all()
        stamp = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]
        self.recent[unit.name] = (now, stamp)
        return stamp


def live_router(desk: DeskApi) -> APIRouter:
    router = APIRouter(prefix="/api/desk", tags=["desk"])
    stamps = Stamps(desk)

    @router.get("/changes", summary="Wait until the caller's open tasks change (a long poll); their new stamp")
    async def changes(request: Request, caller: Caller = Depends(desk.caller),
                      since: str = Query("", max_length=64, description="The stamp the page last had."),
                      wait_s: float = Query(WAIT_S, ge=0, le=WAIT_S, description="Longest wait, seconds.")) -> dict:
        give_up = time.monotonic() + wait_s
        while True:
            stamp = await run_in_threadpool(stamps.of, caller.unit)
            if stamp != since or time.monotonic() >= give_up or await request.is_disconnected():
                return {"stamp": stamp}
            await asyncio.sleep(CHECK_S)

    return router
