"""Logging in to the broker: SASL/SCRAM credentials, kept and used.

A process logs in as the principal in ANTIFRAUD_KAFKA_USERNAME / ANTIFRAUD_KAFKA_PASSWORD;
unset, it connects as before, without SASL. The passwords of every principal of the ACL plan
(streams.acl_plan) live in one JSON file that only this user can read (run/secrets/ by
default, never committed); `antifraud acl apply` creates what is missing and sets them on
the broker.

A wrong or missing credential must give one clear line, not a client retrying (and
logging) for ever: `check_login` asks the broker once and raises `LoginRefused` with that line.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streams.settings import Settings

MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"  # the broker's super user: topics apply, acl apply, the broker itself


class LoginRefused(RuntimeError):
    """The broker did not let this process in; str() is the one line to show."""


def credentials_path(settings: Settings) -> Path:
    return settings.run_dir / "secrets" / "kafka-users.json"


def client_security(settings: Settings) -> dict[str, Any]:
    """The SASL part of a confluent-kafka configuration; empty when no user is configured."""
    if not settings.kafka_username:
        return {}
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    return sasl_config(settings.kafka_username, password)


def sasl_config(username: str, password: str) -> dict[str, Any]:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": MECHANISM,
            "sasl.username": username, "sasl.password": password}


def load_or_create(path: Path, names: list[str]) -> tuple[dict[str, str], list[str]]:
    """Every name's password from `path`, generating (and writing, mode 0600) those it lacks.

    Returns the passwords and the names generated now. Existing passwords are never changed.
    """
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    new = sorted(set(names) - set(known))
    if new:
        known.update({name: secrets.token_urlsafe(24) for name in new})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent)  # mode 0600
        with os.fdopen(fd, "w") as out:
            json.dump(dict(sorted(known.items())), out, indent=1)
        os.replace(temp, path)  # whole or not at all
    return known, new


def check_login(bootstrap: str, security: dict[str, Any], timeout_s: float = 10.0) -> None:
    """Ask the broker for its metadata; a refused login raises LoginRefused at once, a refused
    connection once `timeout_s` has passed (a broker that is restarting also refuses for a while)."""
    errors: list[KafkaError] = []
    user = security.get("sasl.username", "(no SASL user)")
    # log_level 0: librdkafka's own log would repeat the refusal on every reconnect.
    admin = AdminClient({"bootstrap.servers": bootstrap, **security, "error_cb": errors.append, "log_level": 0})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            errors.append(exc.args[0])
        admin.poll(0)  # serves error_cb
        if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            break
    raise LoginRefused(_why(bootstrap, user, errors))


def _why(bootstrap: str, user: str, errors: list[KafkaError]) -> str:
    if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
        return (f"broker {bootstrap} refused user {user!r}: wrong user name or password "
                "(ANTIFRAUD_KAFKA_USERNAME / ANTIFRAUD_KAFKA_PASSWORD)")
    if user == "(no SASL user)":
        return (f"broker {bootstrap} closed the connection: it requires a SASL/SCRAM login "
                "(set ANTIFRAUD_KAFKA_USERNAME and ANTIFRAUD_KAFKA_PASSWORD)")
    return f"broker {bootstrap} did not answer user {user!r}: {errors[-1].str() if errors else 'no answer'}"
