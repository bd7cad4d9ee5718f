"""alert_state: what the escalate agent keeps per person, and the effects its rules decide.

The state is msgspec structs, stored in the Faust table as their builtins (JSON); the
effects are what the agent carries out before it writes the state back. The DueIndex is
what the agent's timer keeps beside the table so that a tick visits only the persons due.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, fields
from datetime import datetime

import msgspec

from streams.contracts.actions import Action, Outcome, Result
from streams.contracts.alerts import Alert, Tier
from streams.contracts.dissuasion import BankReasonCode, Escalation, RequestKind
from streams.dissuasion import Planned

REACHED = {Result.delivered, Result.answered, Result.dissuaded, Result.refused}
VISIT_TIERS = {Tier.high, Tier.funds_warning}
ACTIVE = {"sent", "applied", "renew_sent", "renewed"}  # bank measures that are (or are about to be) in force


# ------------------------------------------------------------------------------------ state
class TrackedAction(msgspec.Struct):
    action: Action  # as last sent (attempt counts up on a retry)
    attempts: int
    sla_tracked: bool
    reached: bool = False
    exhausted: bool = False  # every attempt ended without reaching the person
    breached: bool = False

    @property
    def settled(self) -> bool:
        return self.reached or self.exhausted


class PartnerRequest(msgspec.Struct):
    """A protective measure asked of a bank (or a line suspension asked of a carrier)."""

    request_id: str  # the apply request's id
    partner: str
    reason: str
    status: str  # sent, applied, renew_sent, renewed, release_sent, released, rejected, unroutable
    expires_at: datetime
    account: str | None = None
    renewals: int = 0
    message_ids: list[str] = msgspec.field(default_factory=list)  # apply, renew, release ids


class AlertCase(msgspec.Struct):
    alert: Alert  # latest version
    tier: Tier  # the dissuasion tier: the alert's, or higher after escalation
    opened_at: datetime
    status: str = "open"
    closed_at: datetime | None = None
    closed_by: str | None = None  # dissuaded, refused, expired
    actions: dict[str, TrackedAction] = msgspec.field(default_factory=dict)
    slots: dict[str, str] = msgspec.field(default_factory=dict)  # slot -> id of the action holding it
    outcome_ids: list[str] = msgspec.field(default_factory=list)
    transfer_ids: list[str] = msgspec.field(default_factory=list)
    first_contact_at: datetime | None = None
    bank_requests: dict[str, PartnerRequest] = msgspec.field(default_factory=dict)  # "<bank>:<account>"
    carrier_requests: dict[str, PartnerRequest] = msgspec.field(default_factory=dict)  # request id
    supervisor_visits: int = 0

    @property
    def is_open(self) -> bool:
        return self.status == "open"


class PersonState(msgspec.Struct):
    partition: int  # where the state lives: the timer sends its findings there
    alerts: dict[str, AlertCase] = msgspec.field(default_factory=dict)
    # Outcomes read before their alert (the topics are read side by side): applied when it comes.
    pending: list[Outcome] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------------------------- effects
@dataclass
class BankOrder:
    request_id: str
    alert_id: str
    bank: str
    account: str
    kind: RequestKind
    reason: BankReasonCode
    expires_at: datetime


@dataclass
class Closure:
    result: str
    seconds: float | None  # alert to final outcome; None for an expiry


@dataclass
class Effects:
    actions: list[Planned] = field(default_factory=list)  # slot set: claim first; line_suspension: a CarrierRequest
    bank: list[BankOrder] = field(default_factory=list)
    unroutable_banks: list[str] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    breaches: list[Tier] = field(default_factory=list)
    first_contact_s: list[float] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    acks: list[tuple[str, str]] = field(default_factory=list)  # (partner, status) for the metrics
    forget: bool = False

    def extend(self, other: Effects) -> None:
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                getattr(self, f.name).extend(getattr(other, f.name))


# ------------------------------------------------------------------------- the timer's index
def closed_tally(state: PersonState) -> tuple[int, int]:
    """(closed, of which dissuaded) alerts of the state: its share of the success ratio."""
    closed = [c for c in state.alerts.values() if not c.is_open]
    return len(closed), sum(c.closed_by == "dissuaded" for c in closed)


class DueIndex:
    """When each person's state can next give the timer a finding, and the success-ratio tallies.

    Kept by one worker process for the alert_state of its partitions: `put` wherever the state is
    written, `drop` where it is deleted; `clear` and put everything again after a full scan. A person
    whose moment has come stays due (is returned by every `due`) until the state is written again,
    as the full scan found them every tick. The heap has lazy deletion: an entry counts only while
    it is the person's current moment.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[datetime | None, int, int]] = {}  # person -> (next due, closed, dissuaded)
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, None] = {}  # persons whose moment has come: an ordered set
        self.closed = self.dissuaded = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, person_id: str) -> bool:
        return person_id in self._entries

    def put(self, person_id: str, state: PersonState, next_due: datetime | None) -> None:
        self.drop(person_id)
        closed, dissuaded = closed_tally(state)
        self._entries[person_id] = (next_due, closed, dissuaded)
        self.closed += closed
        self.dissuaded += dissuaded
        if next_due is not None:
            heapq.heappush(self._heap, (next_due, person_id))
            if len(self._heap) > 2 * len(self._entries) + 64:  # mostly superseded entries: bound the memory
                self._compact()

    def drop(self, person_id: str) -> None:
        entry = self._entries.pop(person_id, None)
        self._due.pop(person_id, None)
        if entry is not None:
            self.closed -= entry[1]
            self.dissuaded -= entry[2]

    def clear(self) -> None:
        self._entries.clear()
        self._heap.clear()
        self._due.clear()
        self.closed = self.dissuaded = 0

    def due(self, now: datetime) -> list[str]:
        """The persons whose state can have a finding at `now` (their moment has come, state unchanged since)."""
        while self._heap and self._heap[0][0] <= now:
            at, person_id = heapq.heappop(self._heap)
            entry = self._entries.get(person_id)
            if entry is not None and entry[0] == at:  # else superseded by a later put, or dropped
                self._due[person_id] = None
        return list(self._due)

    def _compact(self) -> None:
        self._heap = [(at, p) for p, (at, _c, _d) in self._entries.items() if at is not None and p not in self._due]
        heapq.heapify(self._heap)
