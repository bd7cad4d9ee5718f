"""Dead letters: what a stage could not accept, kept whole with where it came from and why.

Nothing that entered is lost silently: every stage that rejects a record writes one of
these, with the original bytes (cut to max_bytes when oversized), the source coordinates
and the reason. The id is the source coordinates, so a replay writes the same record.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from streams.contracts import DeadLetter, DeadLetterReason


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


def undecodable(stage: str, message, detail: str, max_bytes: int) -> DeadLetter:
    """A normalized record that does not decode (a bug upstream): kept, not lost."""
    rejected = Rejected(DeadLetterReason.schema_violation, detail)
    return of_faust_message(stage, message, rejected, datetime.now(timezone.utc), max_bytes)
