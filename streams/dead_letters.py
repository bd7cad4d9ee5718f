"""Dead letters: what a stage could not accept, kept whole with where it came from and why.

Nothing that entered is lost silently: every stage that rejects a record writes one of
these, with the original bytes (cut to max_bytes when oversized), the source coordinates
and the reason. The id is the source coordinates, so a replay writes the same record.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from streams.contracts import DeadLetter, DeadLetterReason
from streams.masking import mask_text

_LONG_DIGITS = re.compile(r"\d{6,}")  # in case a value slipped into a validation message


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: DeadLetterReason
    detail: str


def dead_letter(
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    key: bytes | None,
    rejected: Rejected,
    now: datetime,
    max_bytes: int,
) -> DeadLetter:
    original = value or b""
    kept = original[:max_bytes]
    return DeadLetter(
        dead_letter_id=f"{topic}:{partition}:{offset}",
        stage=stage,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        reason=rejected.reason,
        detail=rejected.detail,
        received_at=now,
        original_size=len(original),
        original_sha256=hashlib.sha256(original).hexdigest(),
        original_b64=base64.b64encode(kept).decode(),
        original_truncated=len(kept) < len(original),
        key_b64=base64.b64encode(key).decode() if key else None,
    )


def of_faust_message(stage: str, message, rejected: Rejected, now: datetime, max_bytes: int) -> DeadLetter:
    """From a Faust Message (attributes)."""
    return dead_letter(
        stage=stage, topic=message.topic, partition=message.partition, offset=message.offset,
        value=message.value, key=message.key, rejected=rejected, now=now, max_bytes=max_bytes,
    )


def of_kafka_message(stage: str, message, rejected: Rejected, now: datetime, max_bytes: int) -> DeadLetter:
    """From a confluent-kafka Message (methods)."""
    return dead_letter(
        stage=stage, topic=message.topic(), partition=message.partition(), offset=message.offset(),
        value=message.value(), key=message.key(), rejected=rejected, now=now, max_bytes=max_bytes,
    )


def decode_failure(exc: BaseException, value: bytes | None) -> Rejected:
    """Why `value` did not decode, from what the decoder raised; the detail names no value."""
    if not value:  # a tombstone (None: the decoder raised TypeError) or zero bytes
        return Rejected(DeadLetterReason.empty, "the record has no value")
    if isinstance(exc, UnicodeDecodeError):  # msgspec raises it for a JSON string that is not UTF-8
        return Rejected(DeadLetterReason.not_utf8, "message is not UTF-8: a JSON string holds other bytes")
    if isinstance(exc, msgspec.ValidationError):
        return Rejected(DeadLetterReason.schema_violation, _LONG_DIGITS.sub("<digits>", str(exc)))
    if isinstance(exc, RecursionError):
        return Rejected(DeadLetterReason.not_json, "not JSON: nested too deep")
    if isinstance(exc, msgspec.DecodeError):
        if value is not None and not _is_utf8(value):
            return Rejected(DeadLetterReason.not_utf8, "message is not UTF-8")
        return Rejected(DeadLetterReason.not_json, f"not JSON: {_LONG_DIGITS.sub('<digits>', str(exc))}")
    return internal_error("decode", exc)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def undecodable(stage: str, message, exc: BaseException, max_bytes: int) -> DeadLetter:
    """A platform-written record that does not decode (a bug upstream): kept, not lost."""
    rejected = decode_failure(exc, message.value)
    return of_faust_message(stage, message, rejected, datetime.now(UTC), max_bytes)


def internal_error(stage: str, exc: BaseException) -> Rejected:
    """A record the stage failed on (a bug): the stage, the exception class and a masked message."""
    return Rejected(DeadLetterReason.internal_error, f"{stage}: {type(exc).__name__}: {mask_text(exc)}")
