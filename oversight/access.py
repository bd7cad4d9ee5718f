"""Least privilege in the console: who is asking, what they may see, and the access log.

Every request carries a unit token (`Authorization: Bearer <token>`). The configured
tokens (ANTIFRAUD_CONSOLE_TOKENS) map each token to a unit:

    centre            the city anti-fraud centre: everything
    county:<code>     a county bureau: its county
    station:<code>    a police station: its jurisdiction only
    hotline:<code>    the 96110 hotline team: its desk tasks only (oversight/desk/), nothing else
    bank:<code>, carrier:<code>   partners: nothing here (403)

Phone numbers are masked for everyone; a role in ANTIFRAUD_CONSOLE_PHONE_ROLES may ask to
reveal them (`reveal=phones`), and every phone revealed is written to access_log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Header, HTTPException
from sqlalchemy import Connection, insert, true

from oversight import schema
from streams.masking import mask
from streams.settings import Settings

VIEWER_ROLES = ("centre", "county", "station")
PARTNER_ROLES = ("bank", "carrier")
DESK_ROLES = ("hotline",)  # the 96110 hotline team: works desk tasks (oversight/desk/), sees no console data


@dataclass(frozen=True)
class Unit:
    role: str
    code: str = ""

    @property
    def name(self) -> str:
        return f"{self.role}:{self.code}" if self.code else self.role

    def scope(self, table):
        """SQL condition on a table with county/station columns: what this unit may see."""
        if self.role == "centre":
            return true()
        if self.role == "county":
            return table.c.county == self.code
        if self.role == "station":
            return table.c.station == self.code
        raise PermissionError(self.name)

    def sees(self, county: str, station: str) -> bool:
        return self.role == "centre" or (self.role == "county" and county == self.code) or (
            self.role == "station" and station == self.code)


def parse_unit(spec: str) -> Unit:
    role, _, code = spec.partition(":")
    if role not in VIEWER_ROLES + PARTNER_ROLES + DESK_ROLES or (role != "centre" and not code) or (role == "centre" and code):
        raise ValueError(f"console token unit {spec!r}: expected centre, county:<code>, station:<code>, "
                         "hotline:<code>, bank:<code> or carrier:<code>")
    return Unit(role, code)


class Tokens:
    """Configured tokens, compared in constant time; `sha256:<hex>` keys hold only the token's hash."""

    def __init__(self, configured: dict[str, str]) -> None:
        self._by_hash: dict[str, Unit] = {}
        for key, spec in configured.items():
            digest = key.removeprefix("sha256:").lower() if key.startswith("sha256:") else _sha256(key)
            self._by_hash[digest] = parse_unit(spec)

    def unit_for(self, token: str) -> Unit | None:
        digest = _sha256(token)
        found = None
        for known, unit in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                found = unit
        return found


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def authenticator(tokens: Tokens):
    """FastAPI dependency: the calling unit; 401 without a known token, 403 for a partner (or the hotline team:
    the desk is its part, oversight/desk/api.py)."""

    def current_unit(authorization: str | None = Header(None, description="Bearer <unit token>")) -> Unit:
        scheme, _, token = (authorization or "").partition(" ")
        unit = tokens.unit_for(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if unit is None:
            raise HTTPException(401, "a unit token is required", headers={"WWW-Authenticate": "Bearer"})
        if unit.role not in VIEWER_ROLES:
            raise HTTPException(403, f"{unit.name} has no access to the oversight console")
        return unit

    return current_unit


class Phones:
    """Masks phones, or reveals them to a role that may see them and logs every reveal."""

    def __init__(self, settings: Settings) -> None:
        self.roles = set(settings.console_phone_roles)

    def check_reveal(self, unit: Unit, reveal: bool) -> None:
        if reveal and unit.role not in self.roles:
            raise HTTPException(403, f"{unit.name} may not reveal phone numbers")

    def show(self, conn: Connection, unit: Unit, reveal: bool, path: str, alert_id: str, person_id: str,
             phone: str | None) -> str | None:
        if phone is None:
            return None
        if not reveal:
            return mask(phone)
        conn.execute(insert(schema.access_log).values(
            at=datetime.now(UTC).replace(tzinfo=None), unit=unit.name, role=unit.role, path=path[:256],
            alert_id=alert_id, person_id=person_id, field="phone",
        ))
        return phone
