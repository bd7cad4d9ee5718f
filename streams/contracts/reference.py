"""Reference data: intelligence lists and the subscriber/account registry.

Both arrive on update topics and are loaded into Valkey by the loader agent; the
simulator seeds them the same way. `op: delete` is a tombstone.
"""

import re
from enum import Enum

from streams.contracts.common import (
    Code,
    Confidence,
    Contract,
    EventId,
    PersonId,
    Timestamp,
    Typology,
    UpdateOp,
    described,
    normalize_phone,
)


class IntelKind(str, Enum):
    fraud_number = "fraud_number"  # 涉诈号码
    number_range = "number_range"  # 号段 (a prefix of E.164 numbers)
    mule_account = "mule_account"  # 涉诈账户 / 资金账户
    phishing_url = "phishing_url"  # 钓鱼网址
    phishing_domain = "phishing_domain"  # 钓鱼域名
    fraud_apk = "fraud_apk"  # 涉诈APK (SHA-256)


class IntelUpdate(Contract):
    """涉诈情报: one entry of an intelligence list, added, refreshed or removed."""

    event_id: EventId
    event_time: described(Timestamp, "When the source published the entry.")
    kind: described(IntelKind, "Which list the entry belongs to.")
    value: described(
        str,
        "Number (E.164), number prefix, account token, URL, domain or APK SHA-256; normalized at ingest.",
        min_length=2,
        max_length=2048,
    )
    op: described(UpdateOp, "upsert adds or refreshes; delete is a tombstone.") = UpdateOp.upsert
    typology: described(Typology, "Fraud typology the entry is known for (预警类型).") = Typology.unknown
    confidence: Confidence = 1.0
    source: described(Code, "Who listed it (e.g. ministry list, carrier, bank, case).") = "unknown"
    expires_at: described(Timestamp | None, "The entry stops counting after this time.") = None

    def __post_init__(self) -> None:
        self.value = normalize_intel_value(self.kind, self.value)


def normalize_intel_value(kind: IntelKind, value: str) -> str:
    value = value.strip()
    if kind is IntelKind.fraud_number:
        return normalize_phone(value, "value")
    if kind is IntelKind.number_range:
        prefix = value.replace(" ", "")
        if not (prefix.startswith("+") and prefix[1:].isdigit() and 3 <= len(prefix) <= 16):
            raise ValueError("number_range must be a '+' followed by 2 to 15 digits")
        return prefix
    if kind is IntelKind.phishing_url:
        return normalize_url(value)
    if kind is IntelKind.phishing_domain:
        return value.lower()
    if kind is IntelKind.fraud_apk:
        if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
            raise ValueError("fraud_apk must be a hex SHA-256")
        return value.lower()
    return value


_AUTHORITY_END = re.compile(r"[/?#]")


def normalize_url(url: str) -> str:
    """Scheme and host lower-cased (they are case-insensitive); path, query and fragment kept as sent.

    Short links differ by case in the path (`t.cn/AbC` is not `t.cn/abc`). A bare `host/path`,
    as SMS carry them, has its host lower-cased too; user info, if any, is kept as sent.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # scheme-relative (//host/path) or bare (host/path)
        scheme, sep, rest = ("", "//", url[2:]) if url.startswith("//") else ("", "", url)
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start():]) if end else (rest, "")
    user, at, host = authority.rpartition("@")
    return scheme.lower() + sep + user + at + host.lower() + tail


class AgeBand(str, Enum):
    under_18 = "under_18"
    age_18_25 = "18_25"
    age_26_40 = "26_40"
    age_41_59 = "41_59"
    age_60_69 = "60_69"
    age_70_plus = "70_plus"
    unknown = "unknown"


class IdentifierKind(str, Enum):
    phone = "phone"
    account = "account"
    cell = "cell"  # a serving cell (基站小区): locates an unregistered phone
    branch = "branch"  # a bank branch (网点): locates an unregistered account


class RegistryUpdate(Contract):
    """实名登记: maps a phone number or account token to a pseudonymous person and their jurisdiction.

    Cells and branches are registered too (no person): they locate a signal whose phone or
    account is not registered.
    """

    event_id: EventId
    event_time: Timestamp
    identifier_kind: described(IdentifierKind, "phone, account, or a location: cell or branch.")
    identifier: described(str, "Phone number (normalized to E.164) or account token.", min_length=3, max_length=64)
    op: described(UpdateOp, "upsert or delete (tombstone).") = UpdateOp.upsert
    person_id: described(PersonId | None, "Pseudonymous person id; required for a phone or account upsert.") = None
    county: described(Code | None, "County / district (县区); required for upsert.") = None
    station: described(Code | None, "Police station (派出所); required for upsert.") = None
    grid: described(Code | None, "Community grid (网格).") = None
    age_band: described(AgeBand, "Age band; 60+ counts as elderly.") = AgeBand.unknown
    student: described(bool, "Enrolled student (在校学生).") = False

    def __post_init__(self) -> None:
        if self.identifier_kind is IdentifierKind.phone:
            self.identifier = normalize_phone(self.identifier, "identifier")
        if self.op is UpdateOp.upsert:
            needed = ("county", "station") if self.identifier_kind in (IdentifierKind.cell, IdentifierKind.branch) else (
                "person_id", "county", "station")
            missing = [f for f in needed if getattr(self, f) is None]
            if missing:
                raise ValueError(f"an upsert needs {', '.join(missing)}")
