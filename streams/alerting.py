"""A person's correlation state and the alert decision: new, upgrade, repeat, suppressed.

Pure: the correlate agent loads the state from its table, calls `observe` and `decide`,
then writes the state back and publishes what was decided.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import Enum

import msgspec

from streams.contracts.alerts import AccountRef, IntelHit, Jurisdiction, Tier, Vulnerability
from streams.rules import Rules
from streams.scoring import Evaluation, Fact, higher, next_tier


class OpenAlert(msgspec.Struct):
    alert_id: str
    version: int
    tier: Tier
    last_t: float  # event time of the last version
    evidence: list[str]


class PersonState(msgspec.Struct):
    facts: list[Fact] = []
    watermark: float = 0.0  # the latest event time seen for this person
    alert_seq: int = 0
    alert: OpenAlert | None = None
    suppressed: int = 0
    late_events: int = 0
    phone: str | None = None
    carrier: str | None = None
    accounts: list[AccountRef] = []
    jurisdiction: Jurisdiction | None = None  # the last one known (an app report of an unregistered phone has none)
    identity_resolved: bool = False  # as of the last signal (an alert raised by late intelligence needs them)
    vulnerability: Vulnerability | None = None
    pending_hits: list[PendingHit] = []  # late intelligence for a signal not seen yet (it overtook it)


class PendingHit(msgspec.Struct):
    event_id: str
    t: float  # the signal's event time
    hit: IntelHit


MAX_PENDING_HITS = 50


def hold_hit(state: PersonState, event_id: str, t: float, hit: IntelHit, rules: Rules) -> None:
    """Keep a re-check whose signal has not reached correlation yet (it is applied when the signal comes)."""
    horizon = state.watermark - rules.history_s
    kept = [p for p in state.pending_hits if p.t >= horizon and not (p.event_id == event_id and p.hit == hit)]
    state.pending_hits = (kept + [PendingHit(event_id, t, hit)])[-MAX_PENDING_HITS:]


def take_held_hits(state: PersonState, event_id: str) -> list[IntelHit]:
    held = [p.hit for p in state.pending_hits if p.event_id == event_id]
    if held:
        state.pending_hits = [p for p in state.pending_hits if p.event_id != event_id]
    return held


_STATE_DECODER = msgspec.json.Decoder(PersonState)
_STATE_ENCODER = msgspec.json.Encoder()


def load(raw: bytes | None) -> PersonState:
    """The state as the table holds it: JSON bytes (also what Faust's json codec wrote before)."""
    return _STATE_DECODER.decode(raw) if raw else PersonState()


def dump(state: PersonState) -> bytes:
    return _STATE_ENCODER.encode(state)


def already_seen(state: PersonState, event_id: str) -> bool:
    """A redelivered signal (at-least-once) must not be counted twice."""
    return any(f.event_id == event_id for f in state.facts)


def observe(state: PersonState, fact: Fact, rules: Rules) -> None:
    """Place the fact by its own event time; flag it late when it is older than the allowed lateness."""
    if state.watermark and fact.t < state.watermark - rules.lateness_s:
        fact.late = True
        state.late_events += 1
    _place(state, fact)
    state.watermark = max(state.watermark, fact.t)
    horizon = state.watermark - rules.history_s
    state.facts = [f for f in state.facts if f.t >= horizon][-rules.max_history :]


def reinstate(state: PersonState, fact: Fact, rules: Rules) -> None:
    """Put back a signal the window no longer holds (a reach-back): placed by its time, not counted as a
    late arrival, and it moves no watermark (it is old news made relevant, not a new event)."""
    _place(state, fact)
    if len(state.facts) > rules.max_history:  # the cap drops the oldest, unless that is the fact just put back
        oldest = next(f for f in state.facts if f is not fact)
        state.facts.remove(oldest)


def _place(state: PersonState, fact: Fact) -> None:
    """Insert the fact among the person's facts by its event time (they stay sorted)."""
    state.facts.insert(bisect.bisect_right([f.t for f in state.facts], fact.t), fact)


class Verdict(str, Enum):
    none = "none"  # nothing reached a tier, or nothing new
    new = "new"  # a new alert id, version 1
    upgrade = "upgrade"  # a higher tier: same id, next version
    repeat = "repeat"  # fresh evidence after the cool-down: one tier up (重复预警)
    suppressed = "suppressed"  # same or lower tier within the cool-down, or already at the top


@dataclass
class Decision:
    verdict: Verdict
    alert_id: str | None = None
    version: int = 0
    tier: Tier | None = None
    previous_tier: Tier | None = None


def decide(state: PersonState, person_id: str, ev: Evaluation, rules: Rules) -> Decision:
    """Decide and update the state's open alert; the caller publishes the alert when emitted."""
    if ev.tier is None:
        return Decision(Verdict.none)
    now = state.watermark
    open_alert = state.alert
    if open_alert is not None and now - open_alert.last_t > rules.alert_open_s:
        open_alert = None  # the old alert has run its course: this is a new episode
    if open_alert is None:
        state.alert_seq += 1
        state.alert = OpenAlert(f"{person_id}-A{state.alert_seq}", 1, ev.tier, now, sorted(ev.evidence))
        return Decision(Verdict.new, state.alert.alert_id, 1, ev.tier)

    fresh = ev.evidence - set(open_alert.evidence)
    if not fresh:
        return Decision(Verdict.none)
    open_alert.evidence = sorted(set(open_alert.evidence) | fresh)
    if higher(ev.tier, open_alert.tier):
        return _raise(open_alert, ev.tier, now, Verdict.upgrade)
    within_cooldown = now - open_alert.last_t < rules.cooldown_s
    if within_cooldown or not rules.repeat.raise_tier or open_alert.tier is Tier.high:
        state.suppressed += 1
        return Decision(Verdict.suppressed, open_alert.alert_id, open_alert.version, open_alert.tier)
    return _raise(open_alert, next_tier(open_alert.tier), now, Verdict.repeat)


def _raise(alert: OpenAlert, tier: Tier, now: float, verdict: Verdict) -> Decision:
    previous = alert.tier
    alert.version += 1
    alert.tier = tier
    alert.last_t = now
    return Decision(verdict, alert.alert_id, alert.version, tier, previous)


def remember_contact(
    state: PersonState, phone: str | None, carrier: str | None, account: AccountRef | None, where: Jurisdiction
) -> Jurisdiction:
    """The latest ways to reach the person, their accounts seen and their jurisdiction; returns the
    jurisdiction to use: this signal's, or the last known when this one could not be located."""
    if where.county != "unknown":
        state.jurisdiction = where
    if phone:
        state.phone = phone
    if carrier:
        state.carrier = carrier
    if account and account not in state.accounts:
        state.accounts = (state.accounts + [account])[-5:]
    return state.jurisdiction or where
