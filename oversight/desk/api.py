"""The desk's HTTP API, mounted by the console under /api/desk (OpenAPI at /openapi.json).

    POST   /api/desk/session                    sign in (user, password): a session token that expires
    DELETE /api/desk/session                    sign out
    GET    /api/desk/tasks                      the unit's open tasks: funds warnings, then priority,
                                                then deadline; phones masked
    GET    /api/desk/tasks/{task_id}            one task; `reveal=true` shows the phone to its assignee
    POST   /api/desk/tasks/{task_id}/take       assign it to me
    POST   /api/desk/tasks/{task_id}/assign     hand it to a user of the holding unit (leads, county, centre)
    POST   /api/desk/tasks/{task_id}/outcome    what happened: one outcome on `outcomes`, however often
                                                it is posted (oversight/desk/closing.py)
    GET    /api/desk/scripts                    every warning type's dissuasion script and its version

Every call but sign-in carries `Authorization: Bearer <token>`: a signed-in user's session token,
or a unit token (oversight.access) for another system, e.g. a station's dispatch system. A caller
sees and acts on its unit's tasks only (a county also its stations' visits; the centre all);
another unit's task answers 404, as if it did not exist. Every write is in access_log.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection, Engine, case, insert, or_, select, true, tuple_, update

from oversight import schema
from oversight.access import DESK_ROLES, VIEWER_ROLES, Tokens
from oversight.desk import people
from oversight.desk.closing import Closer, StillClosing
from oversight.desk.dissuasion_scripts import load_scripts
from oversight.desk.outcomes import NotTaken, OutcomeProducer, desk_outcome
from oversight.desk.people import Caller
from oversight.desk.tasks import OPEN, find_task, visible_to
from streams.catalog import Catalog
from streams.contracts.actions import DeskFinding, Outcome
from streams.contracts.alerts import Tier
from streams.masking import mask
from streams.settings import Settings

log = logging.getLogger(__name__)

TaskId = Annotated[str, Path(max_length=255, description="The task id (the action id and attempt).")]


class SignIn(BaseModel):
    user: str = Field(max_length=64)
    password: str = Field(max_length=256)


class Assign(BaseModel):
    user: str = Field(max_length=64, description="A user of the unit that holds the task.")


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
        self.settings, self.engine = settings, engine
        self.producer = OutcomeProducer(settings, catalog)
        self.closer = Closer(engine, self.producer, settings.desk_produce_timeout_s * 2)
        self.tokens = Tokens(settings.console_tokens)
        self.scripts = load_scripts()  # a script missing for a warning type stops the console here

    def close(self) -> None:
        self.producer.close()

    def caller(self, authorization: str | None = Header(None, description="Bearer <session or unit token>")
               ) -> Caller:
        """401 without a live session or known token; 403 for a unit the desk does not serve (partners)."""
        token = _bearer(authorization)
        unit = self.tokens.unit_for(token) if token else None
        if unit is not None:
            if unit.role not in VIEWER_ROLES + DESK_ROLES:
                raise HTTPException(403, f"{unit.name} has no access to the desk")
            return Caller(unit)
        if token:
            with self.engine.connect() as conn:
                found = people.session_caller(conn, token)
            if found is not None:
                return found
        raise HTTPException(401, "sign in, or send a unit token", headers={"WWW-Authenticate": "Bearer"})

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api/desk", tags=["desk"])
        caller_of = self.caller

        @router.post("/session", summary="Sign in: a session token that expires", status_code=201,
                     responses={401: {"description": "Wrong user or password (the same answer for both)."}})
        def sign_in(body: SignIn, request: Request) -> dict:
            with self.engine.begin() as conn:
                signed = people.sign_in(conn, body.user, body.password, self.settings.desk_session_ttl_s)
                if signed is not None:
                    _log_write(conn, signed[2], request.url.path, None, "sign_in")
            if signed is None:
                raise HTTPException(401, "wrong user or password")
            token, expires, who = signed
            return {"token": token, "expires_at": expires.replace(tzinfo=UTC).isoformat(), "user": who.user,
                    "role": who.role, "unit": who.unit.name}

        @router.delete("/session", summary="Sign out", status_code=204)
        def sign_out(request: Request, authorization: str | None = Header(None),
                     caller: Caller = Depends(caller_of)) -> Response:
            with self.engine.begin() as conn:
                people.sign_out(conn, _bearer(authorization))
                _log_write(conn, caller, request.url.path, None, "sign_out")
            return Response(status_code=204)

        @router.get("/tasks", summary="The unit's open tasks, most urgent first")
        def tasks(caller: Caller = Depends(caller_of)) -> dict:
            t = schema.desk_tasks
            funds_first = case((t.c.tier == Tier.funds_warning.value, 0), else_=1)
            with self.engine.connect() as conn:
                rows = conn.execute(select(t).where(t.c.state == OPEN, visible_to(caller.unit))
                                    .order_by(funds_first, t.c.priority, t.c.deadline, t.c.task_id)).mappings().all()
                evidence = _evidence(conn, rows)
            items = [_task(r, evidence.get((r["alert_id"], r["alert_version"]), [])) for r in rows]
            return {"total": len(items), "funds_warnings": sum(i["tier"] == Tier.funds_warning.value for i in items),
                    "items": items}

        @router.get("/scripts", summary="Every warning type's dissuasion script (劝阻话术) and its version",
                    dependencies=[Depends(caller_of)])
        def scripts() -> dict:
            return {"items": self.scripts.listing()}

        @router.get("/tasks/{task_id}", summary="One task with its warning type's script; its assignee may "
                    "reveal the phone (logged)")
        def task(task_id: TaskId, request: Request, caller: Caller = Depends(caller_of),
                 reveal: bool = Query(False, description="Show the phone unmasked: the assignee of an open task "
                                      "only; every reveal is logged.")) -> dict:
            with self.engine.begin() as conn:
                row = self._visible(conn, caller, task_id)
                item = _task(row, _evidence(conn, [row]).get((row["alert_id"], row["alert_version"]), []))
                item["state"] = row["state"]
                item["script"] = self.scripts.shown_for(row["typology"])
                if reveal:
                    if caller.user is None or row["assignee"] != caller.user or row["state"] != OPEN:
                        raise HTTPException(403, "only the assignee of an open task sees the number")
                    item["phone"] = row["phone"]
                    _log_write(conn, caller, request.url.path, row, "phone")
            return item

        @router.post("/tasks/{task_id}/take", summary="Assign the task to me",
                     responses={409: {"description": "Someone else has it, or it is closed."}})
        def take(task_id: TaskId, request: Request, caller: Caller = Depends(caller_of)) -> dict:
            if caller.user is None or not caller.may_write:
                raise HTTPException(403, "a task is taken by a signed-in officer or operator")
            return self._assign(caller, task_id, caller.user, request.url.path, "desk_take")

        @router.post("/tasks/{task_id}/assign", summary="Hand the task to a user of the holding unit",
                     responses={409: {"description": "The task is closed."}})
        def assign(task_id: TaskId, body: Assign, request: Request, caller: Caller = Depends(caller_of)) -> dict:
            if not caller.may_assign:
                raise HTTPException(403, f"a {caller.role} does not hand tasks over")
            return self._assign(caller, task_id, body.user, request.url.path, "desk_assign", force=True)

        @router.post("/tasks/{task_id}/outcome", summary="Record what happened: one outcome, however often posted",
                     status_code=201, responses={
                         200: {"description": "The same finding was recorded before: nothing new is produced."},
                         404: {"description": "No such task held by (or visible to) the calling unit."},
                         409: {"description": "A different outcome was recorded before; it stands."},
                         503: {"description": "Kafka did not take the outcome in time; post again (it is "
                                               "recorded once)."}})
        def outcome(task_id: TaskId, post: OutcomePost, request: Request, caller: Caller = Depends(caller_of)):
            if not caller.may_write:
                raise HTTPException(403, f"a {caller.role} reads and does not record")
            with self.engine.connect() as conn:
                task = self._visible(conn, caller, task_id)
            wanted = desk_outcome(task, post.finding, post.note, post.amount_sent)
            try:
                stands, produced = self.closer.close(task_id, wanted, caller.who)
            except (NotTaken, StillClosing) as exc:
                log.warning("desk: outcome of %s not yet on the topic (%s)", task_id, type(exc).__name__)
                raise HTTPException(503, "the outcome is not yet recorded: post it again",
                                    headers={"Retry-After": "1"}) from None
            if produced:
                with self.engine.begin() as conn:
                    _log_write(conn, caller, request.url.path, task, "desk_outcome")
            body = {"task_id": task_id, "recorded_now": produced, "outcome": outcome_json(stands)}
            if produced:
                return JSONResponse(body, status_code=201)
            if (stands.finding, stands.amount_sent) != (post.finding, _cents(post.amount_sent)):
                return JSONResponse(body, status_code=409)
            return JSONResponse(body, status_code=200)

        return router

    @staticmethod
    def _visible(conn: Connection, caller: Caller, task_id: str):
        row = find_task(conn, caller.unit, task_id)
        if row is None:
            raise HTTPException(404, "no such task held by your unit")
        return row

    def _assign(self, caller: Caller, task_id: str, user: str, path: str, what: str, force: bool = False) -> dict:
        t = schema.desk_tasks
        with self.engine.begin() as conn:
            row = self._visible(conn, caller, task_id)
            holder = f"{row['holder_role']}:{row['holder_code']}" if row["holder_code"] else row["holder_role"]
            if not people.user_in_unit(conn, user, holder):
                raise HTTPException(422, f"{user} is not a user of {holder}, which holds the task")
            if row["assignee"] == user and row["state"] == OPEN:
                return {"task_id": task_id, "assignee": user}  # theirs already: nothing written, nothing logged
            # Taking is a compare-and-set on a free task (two officers at once: one gets it); a hand-over is not.
            free = true() if force else or_(t.c.assignee.is_(None), t.c.assignee == user)
            changed = conn.execute(update(t).where(t.c.task_id == task_id, t.c.state == OPEN, free)
                                   .values(assignee=user)).rowcount
            if changed:
                _log_write(conn, caller, path, row, what)
            else:
                row = conn.execute(select(t.c.state, t.c.assignee).where(t.c.task_id == task_id)).mappings().one()
        if not changed:
            raise HTTPException(409, "the task is closed" if row["state"] != OPEN
                                else f"{row['assignee']} has it; a lead can hand it over")
        return {"task_id": task_id, "assignee": user}


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _cents(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else amount.quantize(Decimal("0.01"))


def _task(row, evidence: list[str]) -> dict:
    now = datetime.now(UTC).replace(tzinfo=None)
    return {
        "task_id": row["task_id"], "alert_id": row["alert_id"], "channel": row["channel"], "tier": row["tier"],
        "warning_type": row["typology"], "priority": row["priority"],
        "deadline": row["deadline"].replace(tzinfo=UTC).isoformat(),
        "seconds_left": int((row["deadline"] - now).total_seconds()),
        "held_by": f"{row['holder_role']}:{row['holder_code']}" if row["holder_code"] else row["holder_role"],
        "assignee": row["assignee"], "county": row["county"], "station": row["station"], "grid": row["grid"],
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


def _log_write(conn: Connection, caller: Caller, path: str, task, what: str) -> None:
    """Who (unit and user), what, when, on which alert: every desk write and every reveal."""
    conn.execute(insert(schema.access_log).values(
        at=datetime.now(UTC).replace(tzinfo=None), unit=caller.unit.name, role=caller.role or caller.unit.role,
        path=path[:256], alert_id=task["alert_id"] if task is not None else "",
        person_id=task["person_id"] if task is not None else "", field=what, actor=caller.user))


def outcome_json(outcome: Outcome) -> dict:
    return json.loads(msgspec.json.encode(outcome))
