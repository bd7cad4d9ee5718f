"""Broken input, the way partners' feeds really break, so dead-letter handling is exercised.

Each malformation starts from a valid message and breaks one thing; every result fails
msgspec decoding against the topic's contract (tests/simulator check that).
"""

from __future__ import annotations

import random

import msgspec

from simulator.scenarios import Offer

# A value outside the enum, and a value the contract's own checks reject, per input topic.
UNKNOWN_ENUM = {"in_telecom": ("carrier", "china_satnet"), "in_bank": ("channel", "crypto_wallet"),
                "in_app_report": ("source", "wechat_group")}
BAD_VALUE = {"in_telecom": ("subscriber", "not-a-number"), "in_bank": ("amount", "-20.00"),
             "in_app_report": ("reporter_phone", "n/a")}
# Relative frequency of each way to break a message.
MALFORMATIONS = {
    "not_utf8": 1.0, "not_json": 2.0, "missing_field": 3.0, "wrong_type": 3.0, "unknown_enum": 2.0,
    "bad_value": 2.0, "unknown_field": 2.0, "empty": 0.5, "oversized": 0.2,
}
OVERSIZED_BYTES = 70_000  # above the default max_event_bytes (64 KiB)


def malformed(offer: Offer, rng: random.Random) -> tuple[str, bytes | None, bytes, str]:
    """(topic id, key, payload, how) for a broken copy of a valid offer on an input topic."""
    how = rng.choices(list(MALFORMATIONS), weights=list(MALFORMATIONS.values()))[0]
    return offer.topic_id, offer.key, break_message(offer, how, rng), how


def break_message(offer: Offer, how: str, rng: random.Random) -> bytes:
    encoded = msgspec.json.encode(offer.value)
    doc = msgspec.to_builtins(offer.value)
    if how == "not_utf8":
        return b"\xff\xfe" + rng.randbytes(24)
    if how == "not_json":
        return encoded[: len(encoded) // 2]  # a truncated write
    if how == "empty":
        return b""
    if how == "missing_field":
        del doc[rng.choice(_required(type(offer.value)))]
    elif how == "wrong_type":
        name = rng.choice(_required(type(offer.value)))
        doc[name] = 12345 if isinstance(doc[name], str) else "yes"
    elif how == "unknown_enum":
        name, value = UNKNOWN_ENUM[offer.topic_id]
        doc[name] = value
    elif how == "bad_value":
        name, value = BAD_VALUE[offer.topic_id]
        doc[name] = value
    elif how == "unknown_field":
        doc["remark"] = "field the contract does not know"
    elif how == "oversized":
        doc["padding"] = "x" * OVERSIZED_BYTES
    else:
        raise ValueError(f"unknown malformation {how!r}")
    return msgspec.json.encode(doc)


def _required(contract: type) -> list[str]:
    return [f.name for f in msgspec.structs.fields(contract) if f.required]
