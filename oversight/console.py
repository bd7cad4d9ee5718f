"""`antifraud console`: the oversight HTTP API and dashboard (FastAPI, served by uvicorn).

    GET /                      the dashboard (oversight/web/: plain HTML, one JS file, inline SVG)
    GET /api/...               lists, timelines and statistics, within the caller's unit
    GET /openapi.json          the API's OpenAPI document
    /api/desk/...              the dissuasion desk's tasks and outcomes (oversight/desk/api.py, contacts.py, live.py)
    GET /desk                  the desk's pages: sign in, task list, a task (oversight/desk/pages.py)

Every /api request carries a unit token (oversight.access). The interactive docs pages
are off: they load scripts from a CDN, and the console works without a network.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, func, or_, select

from oversight import queries, retro_alerts, rules_history, rules_shadow_view, schema, stats
from oversight.access import Phones, Tokens, Unit, authenticator
from oversight.audit_explanations import OVERDUE, STATES, explanations
from oversight.backlog import ReachBackBacklog
from oversight.db import migrate
from oversight.desk.api import DeskApi
from oversight.desk.contacts import contacts_router
from oversight.desk.explanations import explanation_router
from oversight.desk.live import live_router
from oversight.desk.pages import pages_router
from oversight.desk.tasks import utc_now
from oversight.queries import AlertStatus, Filters, SortKey
from streams.catalog import Catalog, get_catalog
from streams.contracts import Channel, Tier
from streams.contracts.common import Typology
from streams.settings import Settings

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"


def filters(
    since: datetime | None = Query(None, description="Alerts (cases, audits) from this time, RFC 3339; naive = UTC."),
    until: datetime | None = Query(None, description="... up to (not including) this time."),
    typology: list[Typology] = Query([], description="Warning type (预警类型); repeat for several."),
    tier: list[Tier] = Query([], description="Risk tier / class; repeat for several."),
    county: str | None = Query(None),
    station: str | None = Query(None),
    grid: str | None = Query(None),
    status: list[AlertStatus] = Query([], description="open, dissuaded, escalated, unreachable, closed."),
    channel: list[Channel] = Query([], description="Alerts with an action on this channel."),
    retro: bool | None = Query(None, description="true: retro alerts only (回溯预警: raised by intelligence listed "
                               "after the contact); false: the others."),
) -> Filters:
    return Filters(since, until, [t.value for t in typology], [t.value for t in tier], county, station, grid,
                   [s.value for s in status], [c.value for c in channel], retro)


def create_app(settings: Settings, engine: Engine, catalog: Catalog | None = None) -> FastAPI:
    catalog = catalog or get_catalog(settings.topics_file)
    backlog = ReachBackBacklog(settings, catalog)
    desk = DeskApi(settings, engine, catalog)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        backlog.close()  # its broker connection
        desk.close()  # its producer

    app = FastAPI(
        lifespan=lifespan,
        title="Anti-fraud oversight console",
        description="Warnings, dissuasion and accountability per unit (synthetic data). Every /api call needs "
        "`Authorization: Bearer <unit token>`.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    unit_of = authenticator(Tokens(settings.console_tokens))
    phones = Phones(settings)
    tz = ZoneInfo(settings.contact_timezone)

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.include_router(desk.router())
    app.include_router(explanation_router(desk))
    app.include_router(rules_history.router(settings, engine, unit_of))
    app.include_router(rules_shadow_view.router(settings, engine, unit_of))
    app.include_router(contacts_router(desk))
    app.include_router(live_router(desk))
    app.include_router(pages_router())

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(WEB / "index.html")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        with engine.connect() as conn:
            conn.execute(select(1))
        return {"ok": True}

    @app.get("/api/me", summary="The calling unit")
    def me(unit: Unit = Depends(unit_of)) -> dict:
        offset = datetime.now(tz).strftime("%z")
        return {"unit": unit.name, "role": unit.role, "code": unit.code,
                "may_reveal_phones": unit.role in phones.roles, "success_target": settings.console_sla_target,
                "timezone": settings.contact_timezone, "utc_offset": f"{offset[:3]}:{offset[3:]}"}

    @app.get("/api/alerts", summary="Warnings, filtered, paginated and sorted")
    def alerts(request: Request, unit: Unit = Depends(unit_of), f: Filters = Depends(filters),
               page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=500),
               sort: SortKey = Query(SortKey.alert_at_desc),
               reveal: bool = Query(False, description="Reveal phones (logged).")
               ) -> dict:
        phones.check_reveal(unit, reveal)
        with engine.begin() as conn:
            total, items = queries.list_alerts(conn, unit, f, page, page_size, sort)
            numbers = queries.latest_phones(conn, [i["alert_id"] for i in items]) if items else {}
            retro_alerts.mark(items, retro_alerts.of_alerts(conn, [i["alert_id"] for i in items]))
            for item in items:
                item["phone"] = phones.show(conn, unit, reveal, request.url.path, item["alert_id"], item["person_id"],
                                            numbers.get(item["alert_id"]))
        return {"total": total, "page": page, "page_size": page_size, "sort": sort.value, "items": items}

    @app.get("/api/alerts/{alert_id}", summary="One warning with its timeline")
    def alert(alert_id: str, request: Request, unit: Unit = Depends(unit_of),
              reveal: bool = Query(False, description="Reveal the phone (logged).")) -> dict:
        phones.check_reveal(unit, reveal)
        with engine.begin() as conn:
            found = queries.find_alert(conn, unit, alert_id)
            if found is None:
                raise HTTPException(404, "no such alert in your jurisdiction")
            phone = queries.latest_phones(conn, [alert_id]).get(alert_id)
            found["phone"] = phones.show(conn, unit, reveal, request.url.path, alert_id, found["person_id"], phone)
            found["timeline"] = queries.timeline(conn, alert_id)
            versions = retro_alerts.of_alerts(conn, [alert_id]).get(alert_id, [])
        found["retro"], found["reach_back"] = bool(versions), versions
        return found

    @app.get("/api/stats/warnings", summary="Warning counts by type, tier, area and time bucket")
    def warnings(unit: Unit = Depends(unit_of), f: Filters = Depends(filters),
                 bucket: str = Query("day", pattern="^(hour|day|week)$"),
                 area: str = Query("station", pattern="^(county|station|grid)$")) -> dict:
        with engine.connect() as conn:
            return stats.warning_counts(conn, unit, f, bucket, area, tz)

    @app.get("/api/stats/high-risk-areas", summary="Stations ranked by high-risk warnings and cases")
    def high_risk_areas(unit: Unit = Depends(unit_of), f: Filters = Depends(filters),
                        limit: int = Query(10, ge=1, le=100)) -> list[dict]:
        with engine.connect() as conn:
            return stats.high_risk_areas(conn, unit, f, limit)

    @app.get("/api/stats/case-types", summary="High-incidence case types")
    def case_types(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> list[dict]:
        with engine.connect() as conn:
            return stats.case_types(conn, unit, f)

    @app.get("/api/stats/dissuasion", summary="Dissuasion success rate, overall and over time")
    def dissuasion(unit: Unit = Depends(unit_of), f: Filters = Depends(filters),
                   bucket: str = Query("day", pattern="^(hour|day|week)$")) -> dict:
        with engine.connect() as conn:
            return stats.dissuasion(conn, unit, f, bucket, tz, settings.console_sla_target)

    @app.get("/api/stats/first-contact", summary="Time to first contact, percentiles in seconds")
    def first_contact(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> dict:
        with engine.connect() as conn:
            return stats.first_contact(conn, unit, f)

    @app.get("/api/stats/sla-breaches", summary="SLA breaches by the unit that held the actions")
    def sla_breaches(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> list[dict]:
        with engine.connect() as conn:
            return stats.sla_breaches(conn, unit, f)

    @app.get("/api/stats/losses", summary="Losses reported vs estimated losses avoided")
    def losses(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> dict:
        with engine.connect() as conn:
            return stats.losses(conn, unit, f)

    @app.get("/api/stats/audits", summary="Reverse-audit findings per accountable unit")
    def audit_stats(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> dict:
        with engine.connect() as conn:
            return stats.audit_findings(conn, unit, f)

    @app.get("/api/stats/followups", summary="Follow-up visits per station")
    def followup_stats(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> list[dict]:
        with engine.connect() as conn:
            return stats.followups(conn, unit, f)

    @app.get("/api/stats/reach-back", summary="Retro alerts (回溯预警) per intel source: alerts and residents reached")
    def reach_back_sources(unit: Unit = Depends(unit_of), f: Filters = Depends(filters)) -> dict:
        with engine.connect() as conn:
            return retro_alerts.by_source(conn, unit, f)

    @app.get("/api/reach-back/backlog", summary="Reach-back re-checks waiting to be handed to correlation (centre)")
    def reach_back_backlog(unit: Unit = Depends(unit_of)) -> dict:
        # City-wide (how many residents are about to be re-checked), not one jurisdiction's: the centre's.
        if unit.role != "centre":
            raise HTTPException(403, "the reach-back backlog is a city-wide figure: the centre's")
        return backlog.read()

    @app.get("/api/audits", summary="Reverse audits (预警成案倒查), newest first")
    def audits(unit: Unit = Depends(unit_of), f: Filters = Depends(filters), page: int = Query(1, ge=1),
               page_size: int = Query(50, ge=1, le=500)) -> dict:
        au, fi = schema.audits, schema.audit_findings
        where = [or_(unit.scope(au), au.c.audit_id.in_(select(fi.c.audit_id).where(unit.scope(fi)))),
                 *f.period(au.c.filed_at)]
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(au).where(*where)).scalar_one()
            rows = conn.execute(select(au).where(*where).order_by(au.c.filed_at.desc(), au.c.audit_id)
                                .limit(page_size).offset((page - 1) * page_size)).mappings().all()
            written = explanations(conn, rows, settings.desk_explanation_due_s, utc_now())
        return {"total": total, "items": [_audit(r, explained=written[r["audit_id"]]) for r in rows]}

    @app.get("/api/audit-explanations", summary="Reverse-audit explanations the units owe: written, awaited, "
             "overdue (the centre's follow-up of 倒查 explanations)")
    def audit_explanations(unit: Unit = Depends(unit_of), f: Filters = Depends(filters),
                           state: list[str] = Query([OVERDUE], description=f"Any of {', '.join(STATES)}.")) -> dict:
        if set(state) - set(STATES):
            raise HTTPException(422, f"state: any of {', '.join(STATES)}")
        au = schema.audits
        with engine.connect() as conn:
            rows = conn.execute(select(au).where(unit.scope(au), *f.period(au.c.filed_at))
                                .order_by(au.c.filed_at.desc(), au.c.audit_id).limit(2000)).mappings().all()
            found = explanations(conn, rows, settings.desk_explanation_due_s, utc_now())
        items = sorted((e for entries in found.values() for e in entries if e["state"] in state),
                       key=lambda e: (e["due_at"], e["audit_id"], e["unit"]))
        return {"total": len(items), "items": items}

    @app.get("/api/audits/{audit_id}", summary="One reverse audit: every step, who held it, where it broke")
    def audit(audit_id: str, unit: Unit = Depends(unit_of)) -> dict:
        au, fi = schema.audits, schema.audit_findings
        with engine.connect() as conn:
            row = conn.execute(select(au).where(au.c.audit_id == audit_id, or_(
                unit.scope(au), au.c.audit_id.in_(select(fi.c.audit_id).where(unit.scope(fi)))))).mappings().first()
            if row is not None:
                written = explanations(conn, [row], settings.desk_explanation_due_s, utc_now())[audit_id]
        if row is None:
            raise HTTPException(404, "no such audit in your jurisdiction")
        return _audit(row, full=True, explained=written)

    return app


def _audit(row, full: bool = False, explained: list[dict] | None = None) -> dict:
    record = json.loads(row["payload"])
    out = {k: record[k] for k in ("audit_id", "case_id", "person_id", "typology", "county", "station", "filed_at",
                                  "alert_ids", "findings", "responsible_units", "loss_amount")}
    if explained is not None:  # each accountable unit's explanation written at the desk, or when it is due
        out["explanations"] = explained
        out["explanations_overdue"] = sum(e["state"] == OVERDUE for e in explained)
    if full:
        out["steps"] = record["steps"]
        out["lookback_days"] = record["lookback_days"]
        out["audited_at"] = record["audited_at"]
    return out


def run_console(settings: Settings) -> None:
    """`antifraud console`: migrate the ledger to head, then serve on console_host:console_port until stopped.

    Needs only the database (no Valkey); the broker only for the reach-back backlog figure, which says
    so when it cannot be read."""
    import uvicorn
    from prometheus_client import REGISTRY

    from oversight.desk.metrics import DeskTaskCollector

    engine = migrate(settings)
    REGISTRY.register(DeskTaskCollector(engine))  # here, not in create_app: tests make many apps in one process
    if not settings.console_tokens:
        log.warning("console: no unit tokens configured (ANTIFRAUD_CONSOLE_TOKENS): every /api call gets 401")
    log.info("console on http://%s:%d/", settings.console_host, settings.console_port)
    uvicorn.run(create_app(settings, engine), host=settings.console_host, port=settings.console_port,
                log_level=settings.log_level.lower(), access_log=False)
    engine.dispose()

