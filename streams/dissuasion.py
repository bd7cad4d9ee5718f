"""What route and escalate share: the actions a tier calls for, partner requests, and their metrics.

Everything here is a pure function of its inputs, so the route agent (which sends a
tier's actions) and the escalate agent (which tracks them) compute the same actions with
the same ids without talking to each other, and a replay repeats them exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge, Histogram

from streams.contracts.actions import Action, Channel, Target
from streams.contracts.alerts import TIER_RANK, Alert, Jurisdiction, Tier
from streams.contracts.dissuasion import (
    BankReasonCode,
    BankRequest,
    CarrierMeasure,
    CarrierReasonCode,
    CarrierRequest,
    RequestKind,
)
from streams.kafka import key_partition
from streams.routing import UNPLACED, DutyDesks, PartnerKeys, Partners, Routing
from streams.signing import alert_ref, signed

PHONE_CHANNELS = {Channel.sms, Channel.ai_voice, Channel.hotline_call, Channel.app_push}
# Channels that can reach the person; a line suspension acts on the line, not on the person.
CONTACT_CHANNELS = PHONE_CHANNELS | {Channel.police_visit}

# Seconds from the alert: contact should come in minutes, a final outcome within hours.
DISSUASION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400, 259200)

ACTIONS = Counter("antifraud_actions_total", "Dissuasion actions sent, by channel and priority", ["channel", "priority"])
ESCALATIONS = Counter("antifraud_escalations_total", "Escalations, by reason", ["reason"])
SLA_BREACHES = Counter("antifraud_sla_breaches_total", "Visits not confirmed by their deadline, by tier", ["tier"])
FIRST_CONTACT = Histogram(
    "antifraud_alert_to_first_contact_seconds", "From the alert to the first outcome that reached the person",
    buckets=DISSUASION_BUCKETS,
)
FINAL_OUTCOME = Histogram(
    "antifraud_alert_to_final_outcome_seconds", "From the alert to its final outcome (dissuaded or refused)",
    buckets=DISSUASION_BUCKETS,
)
# Counts, not a ratio: each worker holds some partitions' alerts, and only sums over every
# worker divide into the success rate (the console and Prometheus rules do that division).
CLOSED_ALERTS = Gauge(
    "antifraud_dissuasion_closed_alerts", "Alerts closed within the retention, in this worker's partitions"
)
DISSUADED_ALERTS = Gauge(
    "antifraud_dissuasion_dissuaded_alerts", "Of those, closed as dissuaded"
)
ALERTS_CLOSED = Counter("antifraud_alerts_closed_total", "Alerts closed, by how", ["result"])
BANK_REQUESTS = Counter("antifraud_bank_requests_total", "Bank protective requests and acks, by status", ["bank", "status"])
CARRIER_REQUESTS = Counter(
    "antifraud_carrier_requests_total", "Line suspension requests and acks, by status", ["carrier", "status"]
)
UNROUTABLE = Counter(
    "antifraud_actions_unroutable_total", "Planned actions that could not be sent, by channel and why", ["channel", "why"]
)
DUTY_DESK_VISITS = Counter(
    "antifraud_visits_to_duty_desk_total",
    "Visits sent to a duty desk because no police station could be placed, by desk (gaps in the registry)",
    ["desk"],
)
FORWARDED = Counter(
    "antifraud_escalate_forwarded_total",
    "Outcomes keyed with another partitioner than murmur2, sent on to their person's partition",
)
BAD_RECORDS = Counter("antifraud_dissuasion_bad_records_total", "Unreadable records skipped, by topic id", ["topic"])


def person_partition(person_id: str, partitions: int) -> int:
    """The partition the platform's own producers (aiokafka: murmur2, as Java clients) put a person's records in."""
    return key_partition(person_id.encode(), partitions)


def short_hash(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:24]


def action_id(alert_id: str, version: int, tier: Tier, channel: Channel, reason: str, about: str = "") -> str:
    """Deterministic: a replay of the same alert gives the same id. The tier and `about` (the
    action a supervisor visit follows up) keep two escalations of one alert version apart."""
    return "act-" + short_hash(alert_id, version, tier.value, channel.value, reason, about)


def slot(alert_id: str, tier: Tier, channel: Channel) -> str:
    """One send per alert, tier and channel, whoever plans it (route on an upgrade, escalate)."""
    return f"{alert_id}:{tier.value}:{channel.value}"


@dataclass(frozen=True)
class Planned:
    action: Action
    attempts: int
    sla_tracked: bool
    slot: str | None  # None: no other agent could plan it (retries, supervisor visits)


NO_STATION = "no registered home, cell or branch"


def visit_target(where: Jurisdiction, desks: DutyDesks) -> Target:
    """The station that makes the visit: the person's, else a duty desk that exists, saying why.

    The station comes from the registry (home), else from a registered cell or bank branch
    (streams.reference); enrich writes "unknown" when none of them placed the person. A
    visit to "unknown" reaches nobody, and an emergency visit must reach somebody: the
    county's duty desk when any evidence gave the county, else the city centre's.
    """
    if where.station not in UNPLACED:
        return Target(station=where.station, grid=where.grid)
    desk = desks.counties.get(where.county)
    if desk is not None:
        return Target(station=desk, grid=where.grid, station_reason=f"{NO_STATION}: county duty desk")
    # Say which evidence was missing: an unknown county is a registry gap, a county without a
    # desk is a gap in routing.yaml (the centre takes it either way).
    why = "county unknown" if where.county in UNPLACED else f"county {where.county} has no duty desk"
    return Target(station=desks.city_centre, grid=where.grid, station_reason=f"{NO_STATION}, {why}: city centre duty desk")


def target_for(channel: Channel, alert: Alert, partners: Partners, desks: DutyDesks) -> Target | None:
    """Where the channel acts, or None when the alert lacks what it needs."""
    if channel in PHONE_CHANNELS:
        return Target(phone=alert.phone) if alert.phone else None
    if channel is Channel.police_visit:
        return visit_target(alert.jurisdiction, desks)
    if channel is Channel.line_suspension and alert.phone and alert.carrier in partners.carriers:
        return Target(phone=alert.phone, carrier=alert.carrier)
    return None


def plan_tier(alert: Alert, tier: Tier, reason: str, base: datetime, routing: Routing, partners: Partners,
              version: int | None = None) -> list[Planned]:
    """The tier's actions for the alert that can be carried out, due `sla_s` after `base`."""
    version = alert.version if version is None else version
    planned = []
    for rule in routing.tiers[tier].actions:
        target = target_for(rule.channel, alert, partners, routing.duty_desks)
        if target is None:
            UNROUTABLE.labels(rule.channel.value, "no_phone_or_carrier").inc()
            continue
        action = Action(
            action_id=action_id(alert.alert_id, version, tier, rule.channel, reason),
            alert_id=alert.alert_id, alert_version=version, person_id=alert.person_id, channel=rule.channel,
            tier=tier, typology=alert.typology, target=target, jurisdiction=alert.jurisdiction,
            priority=rule.priority, deadline=base + timedelta(seconds=rule.sla_s),
            script_key=routing.script_for(alert.typology), reason=reason, created_at=base,
        )
        planned.append(Planned(action, rule.attempts, rule.sla_tracked, slot(alert.alert_id, tier, rule.channel)))
    return planned


def plan_reaching(alert: Alert, tier: Tier | None, reason: str, base: datetime, routing: Routing,
                  partners: Partners, version: int | None = None) -> tuple[Tier | None, list[Planned]]:
    """The first tier from `tier` up the escalation ladder whose actions can reach the person.

    An alert without a phone cannot get an SMS or a call: rather than warn nobody, its
    actions come from the next tier that has a visit (reason escalation:no_phone).
    """
    while tier is not None:
        planned = plan_tier(alert, tier, reason, base, routing, partners, version)
        if any(p.action.channel in CONTACT_CHANNELS for p in planned):
            return tier, planned
        tier, reason = routing.escalation.next_tier.get(tier), "escalation:no_phone"
    return None, []


def plan_for_alert(alert: Alert, routing: Routing, partners: Partners) -> tuple[Tier | None, list[Planned]]:
    """What a new alert, or a new version of one, calls for: a tier rise adds only the higher tier's actions."""
    if alert.version > 1 and alert.previous_tier is not None:
        if TIER_RANK[alert.tier] <= TIER_RANK[alert.previous_tier]:
            return None, []
        return plan_reaching(alert, alert.tier, "upgrade", alert.alert_at, routing, partners)
    return plan_reaching(alert, alert.tier, "initial", alert.alert_at, routing, partners)


# ----------------------------------------------------------------------------- partner requests
def carrier_request(action: Action, alert_id: str, keys: PartnerKeys, issued_at: datetime, routing: Routing) -> CarrierRequest:
    """The signed request for a line_suspension action; its id is the action's id."""
    carrier = action.target.carrier
    issued_at = issued_at.replace(microsecond=0)  # partners read seconds; fewer digits, fewer parser quirks
    reason = CarrierReasonCode.escalation if action.reason.startswith("escalation") else CarrierReasonCode.high_risk_alert
    unsigned = CarrierRequest(
        request_id=action.action_id, carrier=carrier, phone=action.target.phone, measure=CarrierMeasure.suspend_line,
        reason_code=reason, alert_ref=alert_ref(alert_id, f"carrier:{carrier}", keys.alert_ref),
        issued_at=issued_at, expires_at=issued_at + timedelta(seconds=routing.line_suspension.expires_s), signature="",
    )
    return signed(unsigned, keys.carriers[carrier])


def bank_request(request_id: str, alert_id: str, bank: str, account: str, kind: RequestKind,
                 reason: BankReasonCode, issued_at: datetime, expires_at: datetime, keys: PartnerKeys,
                 routing: Routing) -> BankRequest:
    issued_at = issued_at.replace(microsecond=0)
    unsigned = BankRequest(
        request_id=request_id, bank=bank, account=account, measures=list(routing.bank_requests.measures),
        reason_code=reason, alert_ref=alert_ref(alert_id, f"bank:{bank}", keys.alert_ref),
        issued_at=issued_at, expires_at=expires_at.replace(microsecond=0), kind=kind, signature="",
    )
    return signed(unsigned, keys.banks[bank])
