"""What every gateway offers the worker: send one action, get the channel's answer."""

from __future__ import annotations

import re
from typing import Protocol

import msgspec

from streams.contracts.actions import Action, Result

# A phone number in any common spelling: 7+ digits, maybe with spaces or dashes between.
_NUMBERISH = re.compile(r"\+?\d[\d\s-]{5,}\d")
MAX_DETAIL = 300


class GatewayReply(msgspec.Struct, forbid_unknown_fields=False):
    """The channel's answer; also the JSON body a webhook partner replies with."""

    result: Result
    detail: str = ""


class Gateway(Protocol):
    name: str  # label of antifraud_gateway_calls_total
    # Sends the worker may have in flight at once (1 = one after another). A gateway says so
    # only when its send is thread-safe and the far side takes parallel work (officers on duty).
    concurrency: int

    def send(self, action: Action, outcome_id: str) -> GatewayReply: ...

    def worst_case_s(self) -> float:
        """Longest one send can take: the send lease must be longer."""
        ...

    def close(self) -> None: ...


def scrub(detail: str) -> str:
    """Outcome details are gateway words: never let a phone number through, and keep them short."""
    return _NUMBERISH.sub("<number>", detail)[:MAX_DETAIL]
