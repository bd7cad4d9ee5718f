"""The desk's HTTP API, mounted by the console under /api/desk (OpenAPI at /openapi.json).

    GET  /api/desk/tasks                       the calling unit's open tasks: funds warnings, then
                                               priority, then deadline; phones masked
    POST /api/desk/tasks/{task_id}/outcome     what happened: one outcome on `outcomes`, however
                                               often it is posted (oversight/desk/closing.py)

Every call carries a unit token (oversight.access): a station, county, the centre or the hotline
team (`hotline:<code>`). A unit sees and closes only the tasks it holds (a county also its
stations' visits; the centre all); another unit's task answers 404, as if it did not exist.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection, Engine, case, insert, select, tuple_

from oversight import schema
from oversight.access import DESK_ROLES, VIEWER_ROLES, Tokens, Unit, authenticator
from oversight.desk.closing import Closer, StillClosing
from oversight.desk.outcomes import NotTaken, OutcomeProducer, desk_outcome
from oversight.desk.tasks import OPEN, find_task, visible_to
from streams.catalog import Catalog
from streams.contracts.actions import DeskFinding, Outcome
from streams.contracts.alerts import Tier
from streams.masking import mask
from streams.settings import Settings

log = logging.getLogger(__name__)

TaskId = Annotated[str, Path(max_length=255, description="The task id (the action id and attempt).")]


class OutcomePost(BaseModel):
    """What the officer or operator found. The finding is the desk's vocabulary; the outcome on the
    topic carries it with the contract's result (dissuaded, unreachable, refused, answered)."""

    finding: DeskFinding
    note: str = Field("", max_length=500, description="Free words for the record; phone numbers are removed.")
    amount_sent: Decimal | None = Field(None, gt=0, max_digits=14, decimal_places=2,
                                        description="CNY already sent; required with money_already_sent.")

    @model_validator(mode="after")
    def _amount(self) -> OutcomePost:
        if (self.finding is DeskFinding.money_already_sent) != (self.amount_sent is not None):
            raise ValueError("amount_sent is required with money_already_sent, and only with it")
        return self


class DeskApi:
    def __init__(self, settings: Settings, engine: Engine, catalog: Catalog):
        self.engine = engine
        self.producer = OutcomeProducer(settings, catalog)
        self.closer = Closer(engine, self.producer, settings.desk_produce_timeout_s * 2)
        self.unit_of = authenticator(Tokens(settings.console_tokens), VIEWER_ROLES + DESK_ROLES, "the desk")

    def close(self) -> None:
        self.producer.close()

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api/desk", tags=["desk"])
        unit_of = self.unit_of

        @router.get("/tasks", summary="The unit's open tasks, most urgent first")
        def tasks(unit: Unit = Depends(unit_of)) -> dict:
            t = schema.desk_tasks
            funds_first = case((t.c.tier == Tier.funds_warning.value, 0), else_=1)
            with self.engine.connect() as conn:
                rows = conn.execute(select(t).where(t.c.state == OPEN, visible_to(unit))
                                    .order_by(funds_first, t.c.priority, t.c.deadline, t.c.task_id)).mappings().all()
                evidence = _evidence(conn, rows)
            now = datetime.now(UTC).replace(tzinfo=None)
            items = [_task(r, evidence.get((r["alert_id"], r["alert_version"]), []), now) for r in rows]
            return {"total": len(items), "funds_warnings": sum(i["tier"] == Tier.funds_warning.value for i in items),
                    "items": items}

        @router.post("/tasks/{task_id}/outcome", summary="Record what happened: one outcome, however often posted",
                     status_code=201, responses={
                         200: {"description": "The same finding was recorded before: nothing new is produced."},
                         404: {"description": "No such task held by (or visible to) the calling unit."},
                         409: {"description": "A different outcome was recorded before; it stands."},
                         503: {"description": "Kafka did not take the outcome in time; post again (it is "
                                               "recorded once)."}})
        def outcome(task_id: TaskId, post: OutcomePost, request: Request, unit: Unit = Depends(unit_of)):
            with self.engine.connect() as conn:
                task = find_task(conn, unit, task_id)
            if task is None:
                raise HTTPException(404, "no such task held by your unit")
            wanted = desk_outcome(task, post.finding, post.note, post.amount_sent)
            try:
                stands, produced = self.closer.close(task_id, wanted, unit.name)
            except (NotTaken, StillClosing) as exc:
                log.warning("desk: outcome of %s not yet on the topic (%s)", task_id, type(exc).__name__)
                raise HTTPException(503, "the outcome is not yet recorded: post it again", headers={"Retry-After": "1"}) from None
            if produced:
                with self.engine.begin() as conn:
                    _log_write(conn, unit, request.url.path, task, "desk_outcome")
            body = {"task_id": task_id, "recorded_now": produced, "outcome": outcome_json(stands)}
            if produced:
                return JSONResponse(body, status_code=201)
            if (stands.finding, stands.amount_sent) != (post.finding, _cents(post.amount_sent)):
                return JSONResponse(body, status_code=409)
            return JSONResponse(body, status_code=200)

        return router


def _cents(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else amount.quantize(Decimal("0.01"))


def _task(row, evidence: list[str], now: datetime) -> dict:
    return {
        "task_id": row["task_id"], "alert_id": row["alert_id"], "channel": row["channel"], "tier": row["tier"],
        "warning_type": row["typology"], "priority": row["priority"],
        "deadline": row["deadline"].replace(tzinfo=UTC).isoformat(),
        "seconds_left": int((row["deadline"] - now).total_seconds()),
        "held_by": f"{row['holder_role']}:{row['holder_code']}" if row["holder_code"] else row["holder_role"],
        "county": row["county"], "station": row["station"], "grid": row["grid"],
        "station_reason": row["station_reason"], "phone": mask(row["phone"]) if row["phone"] else None,
        "script_key": row["script_key"], "attempt": row["attempt"], "evidence": evidence,
    }


def _evidence(conn: Connection, rows) -> dict[tuple[str, int], list[str]]:
    """(alert id, version) -> what each fired rule saw (the alert's evidence, no numbers or accounts);
    empty until the ledger has read the alert."""
    keys = {(r["alert_id"], r["alert_version"]) for r in rows}
    if not keys:
        return {}
    a = schema.alerts
    found = conn.execute(select(a.c.alert_id, a.c.version, a.c.payload)
                         .where(tuple_(a.c.alert_id, a.c.version).in_(list(keys)))).all()
    return {(alert_id, version): [f"{s['rule']}: {s['detail']}" if s.get("detail") else s["rule"]
                                  for s in json.loads(payload)["signals"]]
            for alert_id, version, payload in found}


def _log_write(conn: Connection, unit: Unit, path: str, task, what: str) -> None:
    conn.execute(insert(schema.access_log).values(
        at=datetime.now(UTC).replace(tzinfo=None), unit=unit.name, role=unit.role, path=path[:256],
        alert_id=task["alert_id"], person_id=task["person_id"], field=what))


def outcome_json(outcome: Outcome) -> dict:
    return json.loads(msgspec.json.encode(outcome))
