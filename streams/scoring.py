"""Scoring: from a person's recent signals to a score, a tier, a warning type and the evidence.

Pure functions over plain data (no I/O, no clock): the correlate agent keeps the state in
a Faust table and hands it here. Times are event times in epoch seconds, so a replay of
the same events reaches the same decisions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec
import msgspec.structs

from streams.contracts.alerts import TIER_RANK, EnrichedSignal, FiredSignal, IntelHit, SignalEvidence, Tier
from streams.contracts.common import Typology
from streams.contracts.reference import IntelKind
from streams.rules import Rules

CONTACT_KINDS = {IntelKind.fraud_number, IntelKind.number_range}
LINK_KINDS = {IntelKind.phishing_url, IntelKind.phishing_domain}
SUSPICIOUS_REPORTS = {"report:suspicious_call", "report:suspicious_sms", "report:self_report"}
TIER_ORDER = [Tier.low, Tier.medium, Tier.high]


class Fact(msgspec.Struct, omit_defaults=True):
    """What correlation keeps of one signal: enough for every rule, no phone number or account."""

    event_id: str
    t: float  # event time, epoch seconds
    kind: str  # call, sms, transfer_out, transfer_in, payee_added, report:<kind>
    incoming: bool = True
    answered: bool = False
    duration_s: int = 0
    counterpart_type: str | None = None
    counterpart_ref: str | None = None  # short hash: counts distinct numbers without keeping them
    listed_contact: bool = False  # counterpart is a listed fraud number or in a listed range
    listed_link: bool = False  # a listed phishing URL or domain
    listed_apk: bool = False
    mule: bool = False  # the transfer goes to a listed mule account
    mule_confidence: float = 0.0
    amount: float = 0.0
    new_payee: bool = False
    banking_session: bool = False
    votes: dict[str, float] = {}  # typology -> highest confidence among the intel that matched
    late: bool = False


def fact_of(signal: EnrichedSignal) -> Fact:
    hits = signal.intel
    votes: dict[str, float] = {}
    for hit in hits:
        votes[hit.typology.value] = max(votes.get(hit.typology.value, 0.0), hit.confidence)
    fact = Fact(
        event_id=signal.event_id,
        t=signal.event_time.timestamp(),
        kind="",
        votes=votes,
        listed_contact=any(h.kind in CONTACT_KINDS and h.matched_on == "counterpart" for h in hits),
        listed_link=any(h.kind in LINK_KINDS for h in hits),
        listed_apk=any(h.kind is IntelKind.fraud_apk for h in hits),
    )
    if signal.telecom is not None:
        ev = signal.telecom
        fact.kind = ev.kind.value
        fact.incoming = ev.direction.value == "incoming"
        fact.answered = ev.answered
        fact.duration_s = ev.duration_s
        fact.counterpart_type = ev.counterpart_type.value
        fact.counterpart_ref = hashlib.blake2b(ev.counterpart.encode(), digest_size=6).hexdigest()
    elif signal.bank is not None:
        ev = signal.bank
        fact.kind = ev.kind.value
        fact.amount = float(ev.amount or 0)
        fact.new_payee = ev.payee_is_new
        mules = [h.confidence for h in hits if h.kind is IntelKind.mule_account]
        fact.mule, fact.mule_confidence = bool(mules), max(mules, default=0.0)
    elif signal.app is not None:
        ev = signal.app
        fact.kind = f"report:{ev.kind.value}"
        fact.banking_session = ev.during_banking_session
    return fact


def evidence_of(fact: Fact) -> SignalEvidence:
    """What the contact index keeps of a signal for the reach-back window: the fact without its intel."""
    return SignalEvidence(
        kind=fact.kind, incoming=fact.incoming, answered=fact.answered, duration_s=fact.duration_s,
        counterpart_type=fact.counterpart_type, counterpart_ref=fact.counterpart_ref, amount=fact.amount,
        new_payee=fact.new_payee, banking_session=fact.banking_session,
    )


def fact_of_evidence(event_id: str, t: float, evidence: SignalEvidence) -> Fact:
    """The fact of a signal the person's state no longer holds, rebuilt from the contact index (the
    intel it carried then is not kept: the reach-back adds the entry that was listed later)."""
    return Fact(
        event_id=event_id, t=t, kind=evidence.kind, incoming=evidence.incoming, answered=evidence.answered,
        duration_s=evidence.duration_s, counterpart_type=evidence.counterpart_type,
        counterpart_ref=evidence.counterpart_ref, amount=evidence.amount, new_payee=evidence.new_payee,
        banking_session=evidence.banking_session,
    )


@dataclass
class Evaluation:
    score: float = 0.0
    fired: list[FiredSignal] = field(default_factory=list)
    tier: Tier | None = None
    typology: Typology = Typology.unknown
    first_signal_t: float | None = None

    @property
    def evidence(self) -> set[str]:
        return {event_id for signal in self.fired for event_id in signal.event_ids}


def window_of(facts: list[Fact], end: float, seconds: int, anchor: float | None = None) -> list[Fact]:
    """Facts of the window that ends at `end`, or, when the newest evidence is older (it came
    late), the window that starts where that evidence sits: late evidence is judged among
    what happened around it, not only against the latest event."""
    if anchor is not None:
        end = min(end, anchor + seconds)
    return [f for f in facts if end - seconds <= f.t <= end]


def _is_suspect_contact(f: Fact, long_call_kinds: set[str]) -> bool:
    return (
        f.listed_contact
        or f.kind in ("report:screen_sharing", "report:remote_control")
        or (f.kind == "call" and f.answered and f.counterpart_type in long_call_kinds)
    )


def _contact_then_transfer(recent: list[Fact], window_s: int, long_call_kinds: set[str]) -> tuple[Fact, Fact] | None:
    """The latest transfer with a suspect contact at most `window_s` before it, and the earliest
    such contact. Linear in the window's facts times its suspect contacts (few): a person with
    hundreds of signals in the window must not cost hundreds squared."""
    suspects = [c for c in recent if _is_suspect_contact(c, long_call_kinds)]
    best: tuple[Fact, Fact] | None = None
    for x in recent:
        if x.kind != "transfer_out" or (best is not None and x.t <= best[1].t):
            continue
        contact = next((c for c in suspects if 0 <= x.t - c.t <= window_s), None)
        if contact is not None:
            best = (contact, x)
    return best


def evaluate(
    facts: list[Fact], end: float, rules: Rules, elderly: bool, student: bool, anchor: float | None = None
) -> Evaluation:
    """Every signal of rules.yaml over the facts in its window ending at `end` (the person's latest
    event time), or anchored at `anchor` (the time of the evidence just added) when that is older."""
    s = rules.signals
    fired: list[FiredSignal] = []

    def _window(facts_: list[Fact], end_: float, seconds: int) -> list[Fact]:
        return window_of(facts_, end_, seconds, anchor)

    def fire(name: str, weight: float, evidence: list[Fact], detail: str) -> None:
        if evidence:
            fired.append(FiredSignal(rule=name, weight=weight, event_ids=[f.event_id for f in evidence], detail=detail))

    r = s.fraud_number_contact
    fire(
        "fraud_number_contact",
        r.weight,
        [
            f
            for f in _window(facts, end, r.window_s)
            if f.listed_contact
            and (f.kind == "sms" or f.kind.startswith("report:") or (f.kind == "call" and f.answered and f.duration_s >= r.min_call_s))
        ],
        "contact with a listed fraud number or range",
    )
    r = s.phishing_link
    fire("phishing_link", r.weight, [f for f in _window(facts, end, r.window_s) if f.listed_link], "listed phishing URL")
    r = s.long_suspect_call
    kinds = {c.value for c in r.counterpart_types}
    long_calls = [
        f
        for f in _window(facts, end, r.window_s)
        if f.kind == "call" and f.answered and f.duration_s >= r.min_duration_s and f.counterpart_type in kinds
    ]
    fire("long_suspect_call", r.weight, long_calls, f"answered call of {r.min_duration_s // 60}+ min from {', '.join(sorted(kinds))}")
    r = s.many_suspect_numbers
    kinds = {c.value for c in r.counterpart_types}
    suspect = [f for f in _window(facts, end, r.window_s) if f.counterpart_type in kinds and f.counterpart_ref]
    if len({f.counterpart_ref for f in suspect}) >= r.min_distinct:
        fire("many_suspect_numbers", r.weight, suspect, f"{len({f.counterpart_ref for f in suspect})} distinct suspect numbers")
    r = s.fraud_app_installed
    fire(
        "fraud_app_installed",
        r.weight,
        [f for f in _window(facts, end, r.window_s) if f.kind == "report:fraud_app_installed"],
        "fraud app installed",
    )
    for name in ("screen_sharing", "remote_control"):
        r = getattr(s, name)
        seen = [f for f in _window(facts, end, r.window_s) if f.kind == f"report:{name}"]
        banking = any(f.banking_session for f in seen)
        detail = f"{name.replace('_', ' ')}" + (" during a banking session" if banking else "")
        fire(name, r.weight + (r.banking_session_bonus if banking else 0), seen, detail)
    r = s.suspicious_report
    fire(
        "suspicious_report",
        r.weight,
        [f for f in _window(facts, end, r.window_s) if f.kind in SUSPICIOUS_REPORTS],
        "resident reported a suspicious contact",
    )
    r = s.rapid_transfers
    transfers = [f for f in _window(facts, end, r.window_s) if f.kind == "transfer_out"]
    if len(transfers) >= r.min_count:
        fire("rapid_transfers", r.weight, transfers, f"{len(transfers)} transfers within {r.window_s // 60} min")
    r = s.new_payee_amount
    to_new = [f for f in _window(facts, end, r.window_s) if f.kind == "transfer_out" and f.new_payee]
    total = sum(f.amount for f in to_new)
    if total >= r.min_amount:
        fire("new_payee_amount", r.weight, to_new, f"{total:,.2f} CNY to new payees")
    r = s.contact_then_transfer
    pair = _contact_then_transfer(_window(facts, end, r.window_s), r.window_s,
                                  {c.value for c in s.long_suspect_call.counterpart_types})
    if pair:
        contact, transfer = pair
        minutes = (transfer.t - contact.t) / 60
        fire("contact_then_transfer", r.weight, [contact, transfer], f"transfer {minutes:.0f} min after a suspect contact")

    ev = Evaluation(fired=fired)
    if fired:
        v = s.vulnerability
        if elderly and v.elderly_weight:
            fired.append(FiredSignal(rule="vulnerability", weight=v.elderly_weight, event_ids=[], detail="elderly (60+)"))
        if student and v.student_weight:
            fired.append(FiredSignal(rule="vulnerability", weight=v.student_weight, event_ids=[], detail="student"))
    ev.score = sum(f.weight for f in fired)
    ev.tier = tier_for(ev.score, rules)
    by_id = {f.event_id: f for f in facts}
    evidence = [by_id[i] for i in ev.evidence if i in by_id]
    ev.typology = typology_of(evidence, rules)
    ev.first_signal_t = min((f.t for f in evidence), default=None)
    return ev


def tier_for(score: float, rules: Rules) -> Tier | None:
    cut = rules.tiers
    if score >= cut.high:
        return Tier.high
    if score >= cut.medium:
        return Tier.medium
    if score >= cut.low:
        return Tier.low
    return None


def typology_of(evidence: list[Fact], rules: Rules) -> Typology:
    """The typology the matched intelligence points to most, by summed confidence."""
    totals: dict[str, float] = {}
    best: dict[str, float] = {}
    for fact in evidence:
        for typology, confidence in fact.votes.items():
            totals[typology] = totals.get(typology, 0.0) + confidence
            best[typology] = max(best.get(typology, 0.0), confidence)
    candidates = [t for t in totals if t != Typology.unknown.value and best[t] >= rules.typology.min_confidence]
    if not candidates:
        return Typology.unknown
    return Typology(max(candidates, key=lambda t: (totals[t], t)))


def next_tier(tier: Tier) -> Tier:
    return TIER_ORDER[min(TIER_ORDER.index(tier) + 1, len(TIER_ORDER) - 1)]


def higher(a: Tier, b: Tier) -> bool:
    return TIER_RANK[a] > TIER_RANK[b]


def is_funds_warning(fact: Fact, rules: Rules) -> bool:
    """资金预警: money is moving to a listed mule account."""
    return fact.kind == "transfer_out" and fact.mule and fact.mule_confidence >= rules.funds_warning.min_confidence


def apply_hit(fact: Fact, hit: IntelHit) -> bool:
    """Late intelligence: what `fact_of` would have set had `hit` been on the signal. True if the fact changed.

    A hit the fact already carries (same list, confidence not higher) changes nothing, so a
    re-check delivered twice, or for a signal that was enriched with the entry, is a no-op.
    """
    before = msgspec.structs.asdict(fact)
    vote = fact.votes.get(hit.typology.value, 0.0)
    if hit.confidence > vote:
        fact.votes = {**fact.votes, hit.typology.value: hit.confidence}
    if hit.kind in CONTACT_KINDS and hit.matched_on == "counterpart":
        fact.listed_contact = True
    elif hit.kind in LINK_KINDS:
        fact.listed_link = True
    elif hit.kind is IntelKind.fraud_apk:
        fact.listed_apk = True
    elif hit.kind is IntelKind.mule_account and fact.kind in ("transfer_out", "transfer_in", "payee_added"):
        fact.mule = True
        fact.mule_confidence = max(fact.mule_confidence, hit.confidence)
    return msgspec.structs.asdict(fact) != before
