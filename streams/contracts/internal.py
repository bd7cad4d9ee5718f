"""Records the platform writes for itself: the normalized envelope and dead letters."""

from enum import Enum
from typing import Generic, TypeVar

from msgspec import Struct

from streams.contracts.common import Timestamp, described

T = TypeVar("T")


class Ingested(Struct, Generic[T], forbid_unknown_fields=True):
    """A validated, normalized input event and where it came from (for tracing back)."""

    event: T
    ingested_at: Timestamp
    source_topic: str
    source_partition: int
    source_offset: int


class DeadLetterReason(str, Enum):
    not_utf8 = "not_utf8"  # the value is not UTF-8 (nor the encoding topics.yaml declares for the topic)
    not_json = "not_json"
    schema_violation = "schema_violation"  # wrong type, missing field, unknown enum, out of range
    oversized = "oversized"
    future_timestamp = "future_timestamp"
    empty = "empty"
    internal_error = "internal_error"  # the platform failed on this record (a bug): detail names stage and error


class DeadLetter(Struct, forbid_unknown_fields=True):
    """死信: an input the platform could not accept, kept with its original bytes and the reason."""

    dead_letter_id: described(str, "topic:partition:offset of the original: a replay writes the same id.")
    stage: described(str, "The stage that rejected it.")
    source_topic: str
    source_partition: int
    source_offset: int
    reason: DeadLetterReason
    detail: described(str, "Validation message: the field path and what was expected, never the value.")
    received_at: Timestamp
    original_size: int
    original_sha256: str
    original_b64: described(str, "Original bytes, base64; cut to the first max_event_bytes when oversized.")
    original_truncated: bool
    key_b64: str | None = None
