"""Reading an action message, and the dead letter for one that cannot be read.

An unreadable action is never retried (it would fail the same way) and never dropped:
it goes to the dead-letter topic with its original bytes, where it came from and why.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from streams.contracts.actions import Action, Channel
from streams.contracts.internal import DeadLetter, DeadLetterReason
from streams.dead_letters import Rejected, decode_failure, of_kafka_message
from streams.isolation import about_a_record

_decode = msgspec.json.Decoder(Action).decode


def read_action(value: bytes | None, channel: Channel) -> tuple[Action | None, Rejected | None]:
    """The action, or why it cannot be carried out; any bytes, never an exception (but MemoryError)."""
    if not value:
        return None, Rejected(DeadLetterReason.empty, "empty message")
    try:
        action = _decode(value)
    except Exception as exc:
        if not about_a_record(exc):
            raise
        return None, decode_failure(exc, value)
    if action.channel is not channel:
        # Carrying it out here would use the wrong gateway and policy; routing must fix it.
        return None, Rejected(
            DeadLetterReason.schema_violation, f"action for channel {action.channel.value} on the {channel.value} topic"
        )
    return action, None


def action_dead_letter(message, rejected: Rejected, stage: str, now: datetime, max_bytes: int = 65536) -> DeadLetter:
    return of_kafka_message(stage, message, rejected, now, max_bytes)
