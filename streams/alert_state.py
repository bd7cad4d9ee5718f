"""alert_state: what the escalate agent keeps per person, and the effects its rules decide.

The state is msgspec structs, stored in the Faust table as their builtins (JSON); the
effects are what the agent carries out before it writes the state back.
"""

from __future__ import annotations

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

    def extend(self, other: "Effects") -> None:
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                getattr(self, f.name).extend(getattr(other, f.name))
