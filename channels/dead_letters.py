"""Reading an action message, and the dead letter for one that cannot be read.

An unreadable action is never retried (it would fail the same way) and never dropped:
it goes to the dead-letter topic with its original bytes, where it came from and why.
"""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from streams.contracts.actions import Action, Channel
from streams.contracts.internal import DeadLetter, DeadLetterReason
from streams.dead_letters import Rejected, of_kafka_message

_decode = msgspec.json.Decoder(Action).decode
_LONG_DIGITS = re.compile(r"\d{6,}")  # in case a value slipped into a validation message


def read_action(value: bytes | None, channel: Channel) -> tuple[Action | None, Rejected | None]:
    if not value:
        return None, Rejected(DeadLetterReason.empty, "empty message")
    try:
        action = _decode(value)
    except msgspec.ValidationError as exc:
        return None, Rejected(DeadLetterReason.schema_violation, _LONG_DIGITS.sub("<digits>", str(exc)))
    except msgspec.DecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return None, Rejected(DeadLetterReason.not_utf8, "message is not UTF-8")
        return None, Rejected(DeadLetterReason.not_json, f"not JSON: {exc}")
    if action.channel is not channel:
        # Carrying it out here would use the wrong gateway and policy; routing must fix it.
        return None, Rejected(
            DeadLetterReason.schema_violation, f"action for channel {action.channel.value} on the {channel.value} topic"
        )
    return action, None


def action_dead_letter(message, rejected: Rejected, stage: str, now: datetime, max_bytes: int = 65536) -> DeadLetter:
    return of_kafka_message(stage, message, rejected, now, max_bytes)
