"""Detection records: enriched signals (who, where, what is known of the counterpart) and alerts."""

from enum import Enum

from msgspec import Struct, field

from streams.contracts.common import Confidence, Timestamp, Typology, described
from streams.contracts.reference import AgeBand, IntelKind
from streams.contracts.rules_versions import SHIPPED_RULES_VERSION
from streams.contracts.signals import AppReport, BankEvent, TelecomEvent


class Jurisdiction(Struct, forbid_unknown_fields=True):
    """辖区: the unit responsible for the person."""

    county: described(str, "County / district (县区).")
    station: described(str, "Police station (派出所).")
    grid: described(str, "Community grid (网格); 'unknown' when only the county is known.") = "unknown"


class Vulnerability(Struct, forbid_unknown_fields=True):
    age_band: AgeBand = AgeBand.unknown
    elderly: described(bool, "60 or older (老年人).") = False
    student: described(bool, "Enrolled student (在校学生).") = False


class IntelHit(Struct, forbid_unknown_fields=True):
    """A listed counterpart found in one of the signal's fields."""

    kind: IntelKind
    matched_on: described(str, "Field of the signal that matched: counterpart, sms_url, url, counterparty_account, apk.")
    typology: Typology
    confidence: Confidence
    source: str


class EnrichedSignal(Struct, forbid_unknown_fields=True):
    """A validated signal resolved to a person and jurisdiction, with counterpart intelligence attached.

    Exactly one of telecom / bank / app is set: the normalized event itself.
    """

    event_id: str
    event_time: Timestamp
    ingested_at: Timestamp
    person_id: described(str, "Pseudonymous person id; derived from the identifier when unregistered.")
    identity_resolved: described(bool, "The identifier is in the registry (实名).")
    jurisdiction: Jurisdiction
    vulnerability: Vulnerability
    phone: described(str | None, "The resident's phone (E.164), for contact; internal topics only.") = None
    intel: list[IntelHit] = field(default_factory=list)
    telecom: TelecomEvent | None = None
    bank: BankEvent | None = None
    app: AppReport | None = None


class Tier(str, Enum):
    """Risk tier; a funds warning (资金预警) is its own class, above high."""

    low = "low"
    medium = "medium"
    high = "high"
    funds_warning = "funds_warning"


TIER_RANK = {Tier.low: 1, Tier.medium: 2, Tier.high: 3, Tier.funds_warning: 4}


class FiredSignal(Struct, forbid_unknown_fields=True):
    """One rule that fired, with the events that prove it."""

    rule: described(str, "Rule name in rules.yaml.")
    weight: float
    event_ids: list[str]
    detail: described(str, "What the rule saw, for the analyst; never a phone number or account.") = ""


class AccountRef(Struct, forbid_unknown_fields=True):
    bank: str
    account: str


class ReachBack(Struct, forbid_unknown_fields=True):
    """Late intelligence behind an alert version: an entry listed after the resident touched it (回溯预警)."""

    kind: described(IntelKind, "The list the entry belongs to.")
    source: described(str, "Who listed it (the intel update's source).")
    listed_at: described(Timestamp, "When the entry was listed (the intel update's event_time).")
    contacted_at: described(Timestamp, "When the resident's signal touched it.")
    event_id: described(str, "That signal.")


class Alert(Struct, forbid_unknown_fields=True):
    """预警: a person at risk now, with the tier, the warning type and the evidence.

    A tier rise keeps alert_id and raises version; a funds warning is its own alert.
    """

    alert_id: str
    version: described(int, "1 for a new alert; +1 for each tier rise.", ge=1)
    person_id: str
    identity_resolved: bool
    tier: Tier
    typology: described(Typology, "预警类型: the fraud typology; unknown when nothing points to one.")
    score: float
    signals: list[FiredSignal]
    jurisdiction: Jurisdiction
    vulnerability: Vulnerability
    first_signal_at: Timestamp
    alert_at: Timestamp
    rules_version: described(
        str, "The rules version whose rules raised it (docs/rules.md); the shipped one for alerts written before."
    ) = SHIPPED_RULES_VERSION
    phone: described(str | None, "Resident's phone (E.164) for SMS, voice, hotline and app.") = None
    carrier: described(str | None, "Carrier of the phone, for a line suspension.") = None
    accounts: described(list[AccountRef], "The person's accounts seen in the evidence, for bank requests.") = field(
        default_factory=list
    )
    previous_tier: Tier | None = None
    late_events: described(int, "Evidence events that arrived later than the allowed lateness.") = 0
    reach_back: described(
        ReachBack | None, "Set when late intelligence raised this version (a retro alert): the entry and the contact."
    ) = None


class SignalEvidence(Struct, array_like=True, forbid_unknown_fields=True):
    """What correlation needs of a signal that touched an entry, kept in the contact index for the
    reach-back window (docs/detection.md): no phone number, account or name. One JSON array."""

    kind: described(str, "call, sms, transfer_out, transfer_in, payee_added, report:<kind>.")
    incoming: bool = True
    answered: bool = False
    duration_s: int = 0
    counterpart_type: str | None = None
    counterpart_ref: described(str | None, "Short hash of the counterpart number: counts, never shows it.") = None
    amount: float = 0.0
    new_payee: bool = False
    banking_session: bool = False


class IntelRecheck(Struct, forbid_unknown_fields=True):
    """Late intelligence: an entry listed (or changed) after a signal that touched it was enriched.

    Written by the reference loader for each resident the contact index holds for the entry
    (docs/enrichment.md); correlate applies the hit to that signal in the person's open window.
    """

    person_id: described(str, "The resident whose signal touched the entry (the record key).")
    event_id: described(str, "The signal that touched it.")
    event_time: described(Timestamp, "That signal's event time.")
    hit: described(IntelHit, "The entry as the signal would have found it had it been listed first.")
    listed_at: described(Timestamp, "event_time of the intel update that listed or changed the entry.")
    evidence: described(
        SignalEvidence | None,
        "The signal as correlation needs it, from the contact index: judged from this when the person's state "
        "no longer holds the signal (reach-back, docs/detection.md).",
    ) = None
    reach_back: described(
        bool, "A reach-back over the contact window (paced, behind the live path) rather than a signal of the "
        "last minutes that overtook its entry.",
    ) = False


class ShadowAlert(Alert):
    """影子预警: an alert the candidate rules in shadow would have raised (docs/rules.md, Shadow).

    The same fields as an alert, judged against the shadow's own person state; it is compared
    with the live alerts on the console and never routed to a channel."""
