"""The desk's pages, served by the console: plain HTML, CSS and one JS file (oversight/web/desk/),
no build step, no network but the console's own API.

    GET /desk                  sign in, the unit's task list (updates itself every second) and a task:
                               take it, the script for its warning type, record the outcome
    GET /static/desk/...       its CSS and JS (the console's /static mount)

The pages hold no rights of their own: every call goes to /api/desk/... with the signed-in user's
session token, so what a page can show or do is exactly what the API lets that user see or do.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

DESK_WEB = Path(__file__).parent.parent / "web" / "desk"


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/desk")
    def desk() -> FileResponse:
        return FileResponse(DESK_WEB / "index.html")

    @router.get("/desk/")
    def desk_slash() -> RedirectResponse:
        return RedirectResponse("/desk", status_code=308)

    return router
