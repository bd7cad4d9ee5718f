"""The console's view of the rules versions: every publication, and the diff between two versions.

    GET /api/rules/versions              every publication (a rollback too), newest first, from the ledger
    GET /api/rules/diff?older=A&newer=B  a unified diff of the rules and of the routing

The rules are the city's, not a jurisdiction's: every unit may read them (no personal data).
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import Engine, select

from oversight import schema
from oversight.access import Unit
from streams.contracts.rules_versions import RulesVersion
from streams.rules_publishing import diff, shipped_version
from streams.rules_versions import is_valid
from streams.settings import Settings

DECODE = msgspec.json.Decoder(RulesVersion).decode


def router(settings: Settings, engine: Engine, unit_of) -> APIRouter:
    api = APIRouter()
    rp = schema.rules_publications

    def published() -> list[RulesVersion]:
        with engine.connect() as conn:
            rows = conn.execute(select(rp.c.payload).order_by(rp.c.published_at, rp.c.publication_id)).all()
        return [DECODE(row.payload) for row in rows]

    @api.get("/api/rules/versions", summary="Rules versions: every publication, newest first, the one in force first")
    def versions(_unit: Unit = Depends(unit_of)) -> dict:
        records = published()
        valid = [is_valid(r) for r in records]  # a record the workers refused never was in force
        shipped = shipped_version(settings)
        in_force = next((r.version for r, ok in zip(reversed(records), reversed(valid)) if ok), shipped.version)
        return {"in_force": in_force, "shipped": shipped.version, "items": [
            {"publication_id": r.publication_id, "version": r.version, "published_by": r.published_by,
             "published_at": r.published_at.isoformat(), "why": r.why, "rollback_from": r.rollback_from,
             "refused": not ok}
            for r, ok in zip(reversed(records), reversed(valid))]}

    @api.get("/api/rules/diff", summary="Unified diff of the rules and the routing between two versions")
    def versions_diff(older: str = Query(..., description="A version id (or the shipped one)."),
                      newer: str = Query(..., description="Another version id."),
                      _unit: Unit = Depends(unit_of)) -> dict:
        by_id = {r.version: r for r in published() if is_valid(r)}  # the latest publication of each
        shipped = shipped_version(settings)
        by_id.setdefault(shipped.version, shipped)
        missing = [v for v in (older, newer) if v not in by_id]
        if missing:
            raise HTTPException(404, f"no rules version {', '.join(missing)}")
        return {"older": older, "newer": newer, "diff": diff(by_id[older], by_id[newer])}

    return api
