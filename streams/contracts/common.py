"""Field types shared by every contract.

A contract is a msgspec Struct: the type is the schema. Descriptions live in
`Meta(description=...)` so the JSON Schema files and docs/contracts.md are generated
from the code (see streams.contracts.docs) and never written twice.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated

import msgspec
import phonenumbers
from msgspec import Meta


class Contract(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """Base of every message: a strict reader, so a misspelt field is an error, not lost data."""


def described(tp, description: str, **constraints):
    return Annotated[tp, Meta(description=description, **constraints)]


EventId = described(
    str,
    "Sender's unique id of this message; a repeat within the dedup window is dropped.",
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
)
Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339 time with offset.")]
Code = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
AccountToken = described(
    str,
    "Pseudonymous account token issued by the bank (never the card number).",
    min_length=4,
    max_length=64,
    pattern=r"^[A-Za-z0-9_-]+$",
)
RawPhone = described(
    str,
    "Phone number; any common form is accepted and normalized to E.164 at ingest.",
    min_length=3,
    max_length=32,
)
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
PersonId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256, hex.")]
Confidence = Annotated[float, Meta(ge=0.0, le=1.0, description="0..1")]

MAX_AMOUNT = Decimal("100000000.00")  # 100 million CNY: above this a message is corrupt
# ASCII digits only: a full-width "８" kept as is would give a key that never matches.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# Digits and the punctuation people write in numbers, e.g. "(+86) 138.0013.8000". Anything else
# (a letter, "ext. 12") is refused: phonenumbers would silently drop it and return a different,
# real-looking number.
_PHONE_TEXT = re.compile(r"\(?\+?[\d().]+")
# Chinese service numbers and short codes: real senders (a verification SMS, a bank's call, and
# a favourite disguise of fraud) that have no subscriber-number form phonenumbers would accept:
# 106… SMS senders (8-20 digits), 1xx-1xxxx hotlines (110, 10086, 12345), 95xxx/96xxx service
# numbers (96110), 400/800 numbers. They become +86 and their digits, as phonenumbers formats
# the ones it does accept, so a listed number and a record of it always meet.
_CN_SERVICE = re.compile(r"106\d{5,17}|1\d{2,4}|9[56]\d{3,6}|[48]00\d{7}")


class Typology(str, Enum):
    """预警类型: the fraud typology a warning points to."""

    impersonate_police = "impersonate_police"  # 冒充公检法
    investment = "investment"  # 投资理财
    order_brushing = "order_brushing"  # 刷单返利
    fake_loan = "fake_loan"  # 贷款
    fake_customer_service = "fake_customer_service"  # 冒充客服
    romance = "romance"  # 杀猪盘
    other = "other"
    unknown = "unknown"


class UpdateOp(str, Enum):
    upsert = "upsert"
    delete = "delete"  # tombstone: removes the entry


def normalize_phone(raw: str, field: str, default_region: str = "CN") -> str:
    """E.164 form of a phone number; ValueError without echoing the number (it is personal data)."""
    compact = "".join(raw.split()).replace("-", "")  # split() also drops tabs and the CJK space U+3000
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    national = compact[3:] if compact.startswith("+86") else compact
    if _CN_SERVICE.fullmatch(national):
        return "+86" + national
    if _E164.fullmatch(compact):
        return compact
    if not _PHONE_TEXT.fullmatch(compact):
        raise ValueError(f"{field}: phone number has characters other than digits")
    try:
        parsed = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{field}: phone number cannot be parsed") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{field}: not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_money(amount: Decimal, field: str) -> None:
    """CNY with at most 2 decimals, positive, bounded."""
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        raise ValueError(f"{field} must be > 0 and <= {MAX_AMOUNT} CNY")
    if amount.as_tuple().exponent < -2:
        raise ValueError(f"{field} has more than 2 decimals")


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"))
