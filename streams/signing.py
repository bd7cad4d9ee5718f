"""HMAC-SHA256 signatures over canonical JSON, partner keys, and opaque alert references.

Canonical JSON (what is signed): the message object without its `signature` field, keys
sorted, no whitespace, UTF-8 with non-ASCII characters as they are. Signed messages hold
strings, integers, booleans, null, lists and objects only: a float has no single textual
form across languages, so canonical_json refuses one rather than sign something a partner
cannot reproduce. The verifier checks the JSON it received, not a re-encoding of a parsed
object, so a timestamp written "+08:00" stays what it was signed as.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import msgspec

SIGNATURE_FIELD = "signature"
MIN_KEY_CHARS = 32  # 128 bits of hex or more: shorter keys are a configuration mistake
T = TypeVar("T", bound=msgspec.Struct)


class KeyConfigError(RuntimeError):
    """A signing key is missing or too short; the message names the environment variable."""


# ------------------------------------------------------------------------------ signatures
def _refuse_floats(value) -> None:
    if isinstance(value, float):
        raise TypeError("signed messages carry no floats: they have no canonical text form")
    if isinstance(value, Mapping):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_floats(item)


def canonical_json(message: Mapping) -> bytes:
    body = {k: v for k, v in message.items() if k != SIGNATURE_FIELD}
    _refuse_floats(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(message: Mapping, key: bytes) -> str:
    return hmac.new(key, canonical_json(message), hashlib.sha256).hexdigest()


def verify(message: Mapping, key: bytes) -> bool:
    """True when the message carries the signature `key` gives it; constant-time comparison."""
    claimed = message.get(SIGNATURE_FIELD)
    if not isinstance(claimed, str):
        return False
    try:
        expected = sign(message, key)
    except TypeError:
        return False
    return hmac.compare_digest(expected, claimed)


def signed(struct: T, key: bytes) -> T:
    """A copy of `struct` with its signature set (the signature field's current value is ignored)."""
    signature = sign(msgspec.to_builtins(struct), key)
    return msgspec.structs.replace(struct, **{SIGNATURE_FIELD: signature})


def alert_ref(alert_id: str, partner: str, key: bytes) -> str:
    """Opaque reference to an alert for one partner: two banks cannot match their references."""
    return hmac.new(key, f"{partner}\n{alert_id}".encode(), hashlib.sha256).hexdigest()[:32]


# ------------------------------------------------------------------------------------ keys
def dev_secret(run_dir: Path) -> bytes:
    """This installation's development secret: random, created once in run_dir, shared by its processes.

    Never a constant in the code: a development key must not be valid anywhere else. The file
    is written in full under a temporary name and then linked into place, so a process
    starting at the same moment reads either nothing (and links its own) or the whole secret.
    """
    path = run_dir / "secrets" / "partner-dev-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            os.link(temp, path)  # atomic, and never replaces a secret another process linked first
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    return path.read_text().strip().encode()


def derive_dev_key(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, f"antifraud-dev-key\n{label}".encode(), hashlib.sha256).hexdigest().encode()


def load_key(env_var: str, label: str, *, dev: Callable[[], bytes] | None) -> bytes:
    """The key in `env_var`; without it, only where `dev` is given (development), dev()."""
    value = os.environ.get(env_var, "").strip()
    if value:
        if len(value) < MIN_KEY_CHARS:
            raise KeyConfigError(f"{env_var} is shorter than {MIN_KEY_CHARS} characters")
        return value.encode()
    if dev is None:
        raise KeyConfigError(f"{env_var} is not set (ANTIFRAUD_PARTNER_KEYS=env requires every partner key)")
    return dev()
