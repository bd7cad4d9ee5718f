"""Records oversight publishes: reverse audits, follow-up tasks and follow-up outcomes.

Registered in streams.contracts.CONTRACTS under these names so topics.yaml can name them.
Like every contract here: the type is the schema, and no field carries a name.
"""

from enum import Enum

from msgspec import Struct

from streams.contracts.common import Timestamp, Typology, described


class StepKind(str, Enum):
    signal = "signal"  # evidence event behind a fired rule
    alert = "alert"  # one alert version
    action = "action"
    outcome = "outcome"
    escalation = "escalation"
    bank_request = "bank_request"
    bank_ack = "bank_ack"
    carrier_request = "carrier_request"
    carrier_ack = "carrier_ack"
    followup = "followup"  # a follow-up visit's outcome
    case = "case"  # the case report that triggered the audit


class AuditStep(Struct, forbid_unknown_fields=True):
    """One step of the warning chain, in time order."""

    at: Timestamp
    kind: StepKind
    ref: described(str, "Id of the record (event, alert:version, action, outcome, request, ...).")
    unit: described(str, "Unit that held the step: station:<code>, centre:<desk>, bank:<code>, carrier:<code>.")
    summary: described(str, "What happened, for the auditor; never a phone number, account or name.")
    alert_id: str | None = None


class Problem(str, Enum):
    """Where the chain broke (断点)."""

    no_contact = "no_contact"  # no action ever reached the person
    sla_breach = "sla_breach"  # an action's outcome came after its deadline, or never
    refused_without_escalation = "refused_without_escalation"  # refused, and nothing followed
    unreachable_without_escalation = "unreachable_without_escalation"  # unreachable, and nothing followed
    bank_request_unacknowledged = "bank_request_unacknowledged"  # no ack, or the bank rejected it
    no_action = "no_action"  # an alert for which no action was ever issued
    reopened_by_followup = "reopened_by_followup"  # marked dissuaded, follow-up found otherwise
    dissuasion_did_not_hold = "dissuasion_did_not_hold"  # marked dissuaded, and still became a case


class AuditFinding(Struct, forbid_unknown_fields=True):
    problem: Problem
    unit: described(str, "Unit accountable for the broken step.")
    alert_id: str
    county: described(str, "County of the alert's jurisdiction.")
    station: described(str, "Station of the alert's jurisdiction.")
    ref: described(str, "Id of the step that broke or is missing.") = ""
    detail: described(str, "Never a phone number, account or name.") = ""


class AuditRecord(Struct, forbid_unknown_fields=True):
    """预警成案倒查: a warned person became a fraud case; the whole chain and where it broke."""

    audit_id: described(str, "Deterministic from the case id: a replay repeats it.")
    case_id: str
    case_event_id: str
    person_id: str
    typology: described(Typology, "The case's typology (案件类型).")
    county: described(str, "County of the unit that filed the case.")
    station: described(str, "Station that filed the case.")
    filed_at: Timestamp
    occurred_at: Timestamp
    lookback_days: int
    alert_ids: list[str]
    steps: list[AuditStep]
    findings: list[AuditFinding]
    responsible_units: described(list[str], "Units of the person's alerts (jurisdiction stations).")
    audited_at: Timestamp
    loss_amount: described(str | None, "Reported loss in CNY, as a decimal string.") = None


class FollowupTask(Struct, forbid_unknown_fields=True):
    """回访抽查: visit a person marked dissuaded and confirm it held; for the station named."""

    task_id: described(str, "Deterministic from the period and the person: a re-run repeats it.")
    period_start: described(Timestamp, "Start of the period whose dissuaded persons were sampled.")
    period_end: Timestamp
    person_id: str
    alert_id: described(str, "The alert whose dissuasion is checked.")
    county: str
    station: described(str, "The station that makes the follow-up visit.")
    grid: str
    dissuaded_at: Timestamp
    due_at: Timestamp
    seed: described(int, "Seed of the sample, for reproducing it.")
    phone: described(str | None, "Phone (E.164) for the visit; internal topic, read by the station's system only.") = None


class FollowupResult(str, Enum):
    confirmed = "confirmed"  # still dissuaded, no loss
    not_dissuaded = "not_dissuaded"  # was not actually dissuaded: the alert reopens
    unreachable = "unreachable"  # could not be visited


class FollowupOutcome(Struct, forbid_unknown_fields=True):
    """The station's report on one follow-up task."""

    followup_outcome_id: str
    task_id: str
    person_id: str
    alert_id: str
    station: str
    result: FollowupResult
    visited_at: Timestamp
    detail: described(str, "Never a phone number, account or name.") = ""


OVERSIGHT_CONTRACTS: dict[str, type] = {
    "AuditRecord": AuditRecord,
    "FollowupTask": FollowupTask,
    "FollowupOutcome": FollowupOutcome,
}
