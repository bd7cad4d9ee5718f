"""Feedback and escalation records, and the signed requests that leave the platform for partners.

Partner records (BankRequest, CarrierRequest and their acks) are on the minimum scope
(最小范围、最高保密): only what the bank or carrier must act on. No name, no person id, no
typology narrative, no other partner's data; the alert is referred to by an opaque,
per-partner HMAC (`alert_ref`), never by its id. Each is signed with HMAC-SHA256 over its
canonical JSON (see streams/signing.py and docs/dissuasion.md).
"""

from enum import Enum

from msgspec import Struct, field

from streams.contracts.actions import Outcome
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import AccountToken, Code, Timestamp, described

Signature = described(str, "HMAC-SHA256 of the canonical JSON without this field, lowercase hex.", pattern=r"^[0-9a-f]{64}$")
AlertRef = described(str, "Opaque reference to the alert: HMAC of the alert id, different for every partner.",
                     pattern=r"^[0-9a-f]{32}$")
RequestId = described(str, "Unique id of this message; deterministic, so a replay repeats it.",
                      min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
E164 = described(str, "Phone number in E.164.", pattern=r"^\+[1-9][0-9]{6,14}$")


# ------------------------------------------------------------------------------- banks
class BankMeasure(str, Enum):
    """What the bank is asked to do on the account."""

    stop_non_counter_business = "stop_non_counter_business"  # 停止非柜面业务
    protective_stop_payment = "protective_stop_payment"  # 保护性止付


class RequestKind(str, Enum):
    apply = "apply"  # put the measures in place until expires_at
    renew = "renew"  # extend measures already in place to the new expires_at (explicit, capped)
    release = "release"  # lift them early: the person was dissuaded


class BankReasonCode(str, Enum):
    """Why the platform asks; a code, never the story behind it."""

    transfer_during_alert = "transfer_during_alert"  # a new transfer while an alert is open
    dissuasion_refused = "dissuasion_refused"  # the person refused face-to-face dissuasion
    unreachable_funds_warning = "unreachable_funds_warning"  # funds warning and the person cannot be reached
    dissuaded = "dissuaded"  # release: the person was dissuaded


class BankRequest(Struct, forbid_unknown_fields=True):
    """保护性止付 / 停止非柜面业务: a signed protective request to the one bank that holds the account."""

    request_id: RequestId
    bank: described(Code, "The bank that must act; it is the only reader of its topic.")
    account: AccountToken
    measures: described(list[BankMeasure], "Measures to apply, renew or release.", min_length=1)
    reason_code: BankReasonCode
    alert_ref: AlertRef
    issued_at: Timestamp
    expires_at: described(Timestamp, "The measures lapse by themselves then (default 48 h after issue).")
    kind: RequestKind
    signature: Signature


class AckStatus(str, Enum):
    applied = "applied"
    renewed = "renewed"
    released = "released"
    rejected = "rejected"  # see reason


class RejectReason(str, Enum):
    malformed = "malformed"  # not a valid request
    bad_signature = "bad_signature"  # signature does not match: tampered, or a wrong key
    expired = "expired"  # expires_at has passed
    wrong_partner = "wrong_partner"  # addressed to another bank or carrier
    not_in_force = "not_in_force"  # renew or release of measures that are not in place


class BankAck(Struct, forbid_unknown_fields=True):
    """The bank's answer to one BankRequest, signed with the same bank's key."""

    request_id: described(str, "The request answered; topic:partition:offset when the request was unreadable.")
    bank: Code
    kind: RequestKind | None
    status: AckStatus
    acked_at: Timestamp
    signature: Signature
    reason: RejectReason | None = None


# ---------------------------------------------------------------------------- carriers
class CarrierMeasure(str, Enum):
    suspend_line = "suspend_line"  # 关停涉诈风险手机号码; restored after the holder re-verifies in person


class CarrierReasonCode(str, Enum):
    high_risk_alert = "high_risk_alert"  # the holder is at high risk now
    escalation = "escalation"  # the holder could not be dissuaded at a lower tier


class CarrierRequest(Struct, forbid_unknown_fields=True):
    """关停涉诈风险手机号码: a signed request to the carrier of the line to suspend it."""

    request_id: RequestId
    carrier: described(Code, "The carrier that must act.")
    phone: E164
    measure: CarrierMeasure
    reason_code: CarrierReasonCode
    alert_ref: AlertRef
    issued_at: Timestamp
    expires_at: described(Timestamp, "The suspension lapses then unless the holder has been re-verified.")
    signature: Signature


class CarrierAck(Struct, forbid_unknown_fields=True):
    """The carrier's answer to one CarrierRequest, signed with the carrier's key."""

    request_id: str
    carrier: Code
    status: AckStatus
    acked_at: Timestamp
    signature: Signature
    reason: RejectReason | None = None


# -------------------------------------------------------------------------- escalation
class EscalationReason(str, Enum):
    unreachable = "unreachable"  # not reached after the tier's configured attempts
    channel_failed = "channel_failed"  # the channels of the tier failed to carry out the actions
    refused = "refused"  # the person refused dissuasion
    sla_breach = "sla_breach"  # a visit was not confirmed by its deadline
    new_transfer = "new_transfer"  # money moved while the alert was open
    partner_rejected = "partner_rejected"  # a bank or carrier rejected a request
    expired = "expired"  # the alert expired without a final outcome: for oversight to review


class Escalation(Struct, forbid_unknown_fields=True):
    """升级: a decision taken because dissuasion did not go as planned, with what it set off."""

    escalation_id: described(str, "Deterministic from the alert and the trigger: a replay repeats it.")
    alert_id: str
    person_id: str
    reason: EscalationReason
    tier: described(Tier, "The alert's dissuasion tier when it happened.")
    jurisdiction: Jurisdiction
    trigger: described(str, "Id of the outcome, signal, action or request that set it off.")
    at: Timestamp
    to_tier: described(Tier | None, "The tier whose actions were added, if any.") = None
    action_ids: list[str] = field(default_factory=list)
    bank_request_ids: list[str] = field(default_factory=list)
    detail: described(str, "For the operator; never a phone number, account or name.") = ""


# ------------------------------------------------- escalate's inbox (internal, keyed by person)
class DueKind(str, Enum):
    deadline = "deadline"  # an SLA-tracked action's deadline has passed
    expiry = "expiry"  # the alert is older than its expiry
    renewal = "renewal"  # a bank request is about to lapse while the alert is open
    forget = "forget"  # every alert of the person closed long enough ago: drop the state


class TimerDue(Struct, tag="due", forbid_unknown_fields=True):
    """The escalate timer found something due; the agent re-checks it against the state."""

    person_id: str
    alert_id: str
    due: DueKind
    ref: described(str, "Action id (deadline) or request id (renewal); empty otherwise.")
    at: Timestamp


class PartnerAckForPerson(Struct, tag="partner_ack", forbid_unknown_fields=True):
    """A verified partner ack, re-keyed to the person whose alert it answers."""

    person_id: str
    alert_id: str
    bank_ack: BankAck | None = None
    carrier_ack: CarrierAck | None = None


class ForwardedOutcome(Struct, tag="outcome", forbid_unknown_fields=True):
    """An outcome that arrived on a partition other than its person's, sent on to the right one."""

    outcome: Outcome


EscalationInbox = TimerDue | PartnerAckForPerson | ForwardedOutcome
