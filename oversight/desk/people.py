"""People at the desk: users with a role in a unit, password sign-in and sessions that expire.

Passwords are kept as argon2id hashes (argon2-cffi); a session is a random token of which the
database keeps only the SHA-256, so a copy of the database signs nobody in. Unit tokens
(oversight.access) stay for other systems: a station's dispatch system posts outcomes with its
unit's token; a person signs in.

    python -m oversight.desk.people add --user li.wei --unit station:ZK01-PS01 --role officer
    python -m oversight.desk.people passwd --user li.wei
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from oversight import schema
from oversight.access import Unit, parse_unit

# Who does what (the roles). Officers visit, operators call; a station lead also hands tasks
# over; county and centre staff oversee; an auditor reads and never writes.
ROLES = ("officer", "operator", "station_lead", "county", "centre", "auditor")
WRITERS = frozenset(ROLES) - {"auditor"}
ASSIGNERS = frozenset({"station_lead", "county", "centre"})
_hasher = PasswordHasher()
# Verified against when the user does not exist, so an unknown name takes as long as a wrong password.
_NOBODY = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Caller:
    """Who is calling the desk: a unit, and the person when a user signed in (None for a unit token)."""

    unit: Unit
    user: str | None = None
    role: str | None = None

    @property
    def who(self) -> str:
        return self.user or self.unit.name

    @property
    def may_write(self) -> bool:
        return self.user is None or self.role in WRITERS

    @property
    def may_assign(self) -> bool:
        return self.user is None or self.role in ASSIGNERS


def add_user(conn: Connection, user: str, unit: str, role: str, password: str) -> None:
    parse_unit(unit)  # refuses a unit the desk does not know
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < 12:
        raise ValueError("a password needs 12 characters or more")
    conn.execute(insert(schema.desk_users).values(user_id=user, unit=unit, role=role,
                                                  password_hash=_hasher.hash(password), created_at=_now()))


def ensure_user(conn: Connection, user: str, unit: str, role: str, password: str) -> bool:
    """Add the user, or give the existing one this unit, role and password (re-enabled); True when new.
    For users a program keeps (make run's simulated staff), whose passwords live one run."""
    u = schema.desk_users
    if conn.execute(select(u.c.user_id).where(u.c.user_id == user)).first() is None:
        add_user(conn, user, unit, role, password)
        return True
    parse_unit(unit)
    conn.execute(update(u).where(u.c.user_id == user).values(unit=unit, role=role, disabled=False))
    set_password(conn, user, password)
    return False


def set_password(conn: Connection, user: str, password: str) -> bool:
    """A new password for an existing user (False: no such user); the user's sessions end."""
    if len(password) < 12:
        raise ValueError("a password needs 12 characters or more")
    u = schema.desk_users
    changed = conn.execute(update(u).where(u.c.user_id == user).values(password_hash=_hasher.hash(password))).rowcount
    conn.execute(delete(schema.desk_sessions).where(schema.desk_sessions.c.user_id == user))
    return bool(changed)


def first_person(conn: Connection, user: str, unit: str, role: str) -> str | None:
    """`antifraud up`'s person at the desk: added with a generated password the first time, which is
    returned to be shown once and kept nowhere; None when the user exists (its password stands)."""
    if conn.execute(select(schema.desk_users.c.user_id).where(schema.desk_users.c.user_id == user)).first():
        return None
    password = secrets.token_urlsafe(12)
    add_user(conn, user, unit, role, password)
    return password


def sign_in(conn: Connection, user: str, password: str, ttl_s: int) -> tuple[str, datetime, Caller] | None:
    """(session token, expiry, caller), or None for a wrong name or password (the same answer for both)."""
    u = schema.desk_users
    row = conn.execute(select(u).where(u.c.user_id == user, u.c.disabled.is_(False))).mappings().first()
    try:
        _hasher.verify(row["password_hash"] if row else _NOBODY, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    token = secrets.token_urlsafe(32)
    expires = _now() + timedelta(seconds=ttl_s)
    conn.execute(insert(schema.desk_sessions).values(session_hash=_digest(token), user_id=user,
                                                     created_at=_now(), expires_at=expires))
    if _hasher.check_needs_rehash(row["password_hash"]):  # parameters raised since: keep the hash current
        conn.execute(update(u).where(u.c.user_id == user).values(password_hash=_hasher.hash(password)))
    return token, expires, _caller(row)


def session_caller(conn: Connection, token: str) -> Caller | None:
    """The signed-in caller of a live session token, else None (unknown, expired, or the user disabled)."""
    s, u = schema.desk_sessions, schema.desk_users
    row = conn.execute(select(u, s.c.session_hash).join(s, s.c.user_id == u.c.user_id)
                       .where(s.c.session_hash == _digest(token), s.c.expires_at > _now(),
                              u.c.disabled.is_(False))).mappings().first()
    return _caller(row) if row is not None else None


def sign_out(conn: Connection, token: str) -> None:
    conn.execute(delete(schema.desk_sessions).where(schema.desk_sessions.c.session_hash == _digest(token)))


def user_in_unit(conn: Connection, user: str, unit: str) -> bool:
    u = schema.desk_users
    return conn.execute(select(u.c.user_id).where(u.c.user_id == user, u.c.unit == unit,
                                                  u.c.disabled.is_(False))).first() is not None


def _caller(row) -> Caller:
    return Caller(parse_unit(row["unit"]), row["user_id"], row["role"])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _cli(argv: list[str] | None = None) -> None:
    from oversight.db import migrate
    from streams.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m oversight.desk.people", description="Desk users.")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user (the password is asked for, never an argument)")
    add.add_argument("--user", required=True)
    add.add_argument("--unit", required=True, help="station:<code>, county:<code>, hotline:<code> or centre")
    add.add_argument("--role", required=True, choices=ROLES)
    passwd = sub.add_parser("passwd", help="a new password for a user (asked for); the user's sessions end")
    passwd.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    password = getpass.getpass(f"password for {args.user}: ")
    engine = migrate(get_settings())
    with engine.begin() as conn:
        if args.command == "add":
            add_user(conn, args.user, args.unit, args.role, password)
            print(f"added {args.user} ({args.role}, {args.unit})")
        elif set_password(conn, args.user, password):
            print(f"new password for {args.user}")
        else:
            raise SystemExit(f"no user {args.user}")


if __name__ == "__main__":
    _cli()
