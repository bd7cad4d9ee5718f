"""Correlate: per person, across sources and time, into tiered, explained alerts.

    signals_enriched (keyed by person) ──> person_state table ──> alerts

signals_enriched is already keyed by person id (enrichment re-keys once), so this stage
reads it without a repartition hop. For every signal: place it by its event time, score
the person's recent signals against rules.yaml, and publish a new alert, a higher-tier
version of the open one, or count a suppressed re-fire. A transfer to a listed mule
account is a funds warning: its own alert, every time, never suppressed.

    signals_recheck (keyed by person) ──> the same table: late intelligence

A re-check (the reference loader: an entry listed after a signal that touched it) applies
the hit to that signal's fact and judges again as if the signal had carried it: a transfer
to a mule listed late is a funds warning then. The fact is the one in the person's window,
or, for a reach-back (agents/reach_back.py) whose signal the window no longer holds, the one
rebuilt from the contact index's evidence. A re-check of the last minute that overtakes its
signal is held in the state and applied when the signal comes. An alert version raised this
way carries `reach_back` (the entry and both times): a retro alert (回溯预警).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from prometheus_client import Counter, Histogram

from agents import correlate_shadow
from streams import metrics
from streams.alerting import (
    Decision,
    PersonState,
    Verdict,
    already_seen,
    decide,
    dump,
    hold_hit,
    load,
    observe,
    reinstate,
    remember_contact,
    take_held_hits,
)
from streams.app import app, catalog, settings, sink_topic, source_topic, table, timed_batches, write_tables_for
from streams.contracts import Alert, EnrichedSignal, Tier
from streams.contracts.alerts import AccountRef, FiredSignal, IntelRecheck, Jurisdiction, ReachBack, Vulnerability
from streams.contracts.reference import IntelKind
from streams.dead_letters import undecodable
from streams.isolation import about_a_record, faust_dead_letters, isolated, stops_worker_on_crash
from streams.rules import Rules
from streams.rules_shadow import in_shadow
from streams.rules_versions import RuleSet, in_force
from streams.scoring import Evaluation, apply_hit, evaluate, fact_of, fact_of_evidence, is_funds_warning

log = logging.getLogger(__name__)

STAGE = "correlate"
DECODER = msgspec.json.Decoder(EnrichedSignal)
RECHECK_DECODER = msgspec.json.Decoder(IntelRecheck)
RECHECK_TOPIC = catalog.topic("signals_recheck").name
ENCODER = msgspec.json.Encoder()
ALERTS = sink_topic("alerts")
DEAD_LETTERS = sink_topic("dead_letter")

ALERTS_TOTAL = Counter("antifraud_alerts_total", "Alerts published (every version)", ["tier", "typology", "county"])
SUPPRESSED = Counter("antifraud_alerts_suppressed_total", "Re-fires suppressed inside the cool-down or at the top tier", [])
LATE_EVENTS = Counter("antifraud_late_events_total", "Signals older than the allowed lateness (still counted)", [])
RECHECKS = Counter("antifraud_intel_rechecks_applied_total",
                   "Late intelligence re-checks by outcome: applied (the signal's fact changed), held (its signal "
                   "not seen yet), unchanged (it already carried the entry), gone (no longer in the window), "
                   "reinstated (a reach-back's signal rebuilt from the contact index)", ["outcome"])
RETRO_ALERTS = Counter("antifraud_retro_alerts_total",
                       "Alert versions raised by late intelligence (回溯预警), by the entry's list and source",
                       ["list", "source"])
SIGNAL_TO_ALERT = Histogram(
    "antifraud_signal_to_alert_seconds",
    "From the first signal's event time to the alert",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)

UNKNOWN_PLACE = Jurisdiction(county="unknown", station="unknown", grid="unknown")

person_state = table("person_state", value_type=bytes, default=bytes)  # streams.alerting.dump/load


@app.agent(source_topic("signals_enriched", "signals_recheck"), name="correlate")
@stops_worker_on_crash(app)
async def correlate(stream):
    dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)
    async for batch in timed_batches(stream, STAGE, settings.ingest_batch_size, settings.ingest_batch_within_s):
        await judge_batch(batch, in_force().current, dead_letter, in_shadow().current)


async def judge_batch(batch, rule_set: RuleSet, dead_letter, candidate: RuleSet | None = None) -> None:
    """The whole micro-batch by one rules version, taken once by the caller (streams/rules_versions.py);
    and, with a candidate in shadow (streams/rules_shadow.py), by the candidate too, after the live one."""
    for event in batch:  # one at a time already: a record that raises is dead-lettered alone
        await isolated(STAGE, [event], lambda events: correlate_one(events[0], rule_set), dead_letter)
        if candidate is not None:
            write_tables_for(event)
            await correlate_shadow.judge_in_shadow(event, candidate, SHADOW_JUDGES)


async def correlate_one(event, rule_set: RuleSet) -> None:
    rules = rule_set.rules
    if event.message.topic == RECHECK_TOPIC:
        return await recheck_one(event, rules)
    try:
        signal = DECODER.decode(event.message.value)
    except Exception as exc:  # a bug upstream: kept in the dead-letter topic, never a stopped stage
        if not about_a_record(exc):
            raise
        log.error("correlate: undecodable record at %s:%d:%d (%s)", event.message.topic, event.message.partition,
                  event.message.offset, type(exc).__name__)
        await DEAD_LETTERS.send(key=STAGE.encode(), value=ENCODER.encode(
            undecodable(STAGE, event.message, exc, settings.max_event_bytes)))
        return
    write_tables_for(event)
    state = load(person_state[signal.person_id])
    if already_seen(state, signal.event_id):
        return
    await publish_judgement(judge_signal(state, signal, rules))
    person_state[signal.person_id] = dump(state)
    metrics.STAGE_LATENCY.labels(STAGE).observe(max(0.0, time.time() - event.message.timestamp))


async def recheck_one(event, rules: Rules) -> None:
    """Late intelligence for one signal of this person: judged again as if it had carried the hit."""
    try:
        recheck = RECHECK_DECODER.decode(event.message.value)
    except Exception as exc:
        if not about_a_record(exc):
            raise
        await DEAD_LETTERS.send(key=STAGE.encode(), value=ENCODER.encode(
            undecodable(STAGE, event.message, exc, settings.max_event_bytes)))
        return
    write_tables_for(event)
    state = load(person_state[recheck.person_id])
    judgement = judge_recheck(state, recheck, rules)
    for outcome in judgement.rechecks:
        RECHECKS.labels(outcome).inc()
    if not judgement.changed:
        return
    await publish_judgement(judgement)
    person_state[recheck.person_id] = dump(state)
    if "applied" in judgement.rechecks:
        metrics.STAGE_LATENCY.labels(STAGE).observe(max(0.0, time.time() - event.message.timestamp))


async def publish_judgement(judgement: Judgement) -> None:
    if judgement.late:
        LATE_EVENTS.inc()
    for alert in judgement.alerts:
        await publish(alert)
    if judgement.suppressed:
        SUPPRESSED.inc()


# ------------------------------------------------------------ the pure part (also the backtest's: backtest/replay.py)
@dataclass
class Judgement:
    """What one signal or re-check decided for a person: the alerts to publish (in order) and what to count."""

    alerts: list[Alert] = field(default_factory=list)
    suppressed: bool = False
    late: bool = False  # the signal came later than the allowed lateness
    rechecks: list[str] = field(default_factory=list)  # re-check outcomes, as RECHECKS counts them
    changed: bool = True  # False: the state must not be written back (nothing the re-check did is kept)


def judge_signal(state: PersonState, signal: EnrichedSignal, rules: Rules) -> Judgement:
    """A new signal of this person (not seen before) into the state, and the alerts it raises."""
    held = take_held_hits(state, signal.event_id)
    if held:  # late intelligence that overtook its signal
        signal.intel = list(signal.intel) + [h for h in held if h not in signal.intel]
    fact = fact_of(signal)
    observe(state, fact, rules)
    state.identity_resolved, state.vulnerability = signal.identity_resolved, signal.vulnerability
    where = remember_contact(state, signal.phone, _carrier(signal), _account(signal), signal.jurisdiction)
    evaluation = evaluate(
        state.facts, state.watermark, rules, signal.vulnerability.elderly, signal.vulnerability.student, anchor=fact.t
    )
    out = Judgement(late=fact.late)
    if is_funds_warning(fact, rules):
        out.alerts.append(funds_warning_alert(signal, fact.event_id, evaluation, state, where, rules.version))
    _judge(out, signal, evaluation, state, where, rules)
    return out


def judge_recheck(state: PersonState, recheck: IntelRecheck, rules: Rules) -> Judgement:
    """Late intelligence for one signal of this person, and the alerts it raises (retro alerts)."""
    out = Judgement()
    fact = next((f for f in state.facts if f.event_id == recheck.event_id), None)
    t = recheck.event_time.timestamp()
    if fact is None and recheck.reach_back and recheck.evidence is not None:
        # The signal left the person's window (or its cap): judged again from the contact index's evidence.
        fact = fact_of_evidence(recheck.event_id, t, recheck.evidence)
        reinstate(state, fact, rules)
        out.rechecks.append("reinstated")
    if fact is None:
        if state.watermark and t < state.watermark - rules.history_s:
            out.rechecks.append("gone")
            out.changed = False
            return out
        hold_hit(state, recheck.event_id, t, recheck.hit, rules)  # its signal is still on its way
        out.rechecks.append("held")
        return out
    was_funds_warning = is_funds_warning(fact, rules)
    if not apply_hit(fact, recheck.hit):
        out.rechecks.append("unchanged")
        out.changed = False
        return out
    out.rechecks.append("applied")
    late = reach_back_of(recheck)
    signal = recheck_signal(recheck, state)
    where = state.jurisdiction or signal.jurisdiction
    elderly = bool(state.vulnerability and state.vulnerability.elderly)
    student = bool(state.vulnerability and state.vulnerability.student)
    evaluation = evaluate(state.facts, state.watermark, rules, elderly, student, anchor=fact.t)
    if is_funds_warning(fact, rules) and not was_funds_warning:
        out.alerts.append(funds_warning_alert(signal, fact.event_id, evaluation, state, where, rules.version,
                                              late=late))
    _judge(out, signal, evaluation, state, where, rules, late)
    return out


def _judge(out: Judgement, signal: EnrichedSignal, evaluation: Evaluation, state: PersonState, where, rules: Rules,
           late: ReachBack | None = None) -> None:
    decision = decide(state, signal.person_id, evaluation, rules)
    if decision.verdict in (Verdict.new, Verdict.upgrade, Verdict.repeat):
        out.alerts.append(risk_alert(signal, decision, evaluation, state, where, rules.version, late))
    elif decision.verdict is Verdict.suppressed:
        out.suppressed = True


def reach_back_of(recheck: IntelRecheck) -> ReachBack:
    return ReachBack(kind=recheck.hit.kind, source=recheck.hit.source, listed_at=recheck.listed_at,
                     contacted_at=recheck.event_time, event_id=recheck.event_id)


def recheck_signal(recheck: IntelRecheck, state: PersonState) -> EnrichedSignal:
    """What the alert builders need of the signal, from the person's state (the signal itself is not kept)."""
    return EnrichedSignal(
        event_id=recheck.event_id, event_time=recheck.event_time, ingested_at=recheck.event_time,
        person_id=recheck.person_id, identity_resolved=state.identity_resolved,
        jurisdiction=state.jurisdiction or UNKNOWN_PLACE, vulnerability=state.vulnerability or Vulnerability(),
        phone=state.phone, intel=[recheck.hit],
    )


def risk_alert(signal: EnrichedSignal, decision: Decision, ev: Evaluation, state: PersonState, where,
               rules_version: str, late: ReachBack | None = None) -> Alert:
    fired = [with_listing(f, late) for f in ev.fired]
    if decision.verdict is Verdict.repeat:
        fired.append(FiredSignal(rule="repeated_warning", weight=0, event_ids=[], detail="fresh evidence after the cool-down"))
    return _alert(signal, decision.alert_id, decision.version, decision.tier, ev, fired, state, where,
                  rules_version, decision.previous_tier, late)


def with_listing(fired: FiredSignal, late: ReachBack | None) -> FiredSignal:
    """A rule fired by a signal whose entry was listed after it says both times (回溯预警)."""
    if late is None or late.event_id not in fired.event_ids:
        return fired
    detail = f"{fired.detail}; " if fired.detail else ""
    return FiredSignal(rule=fired.rule, weight=fired.weight, event_ids=fired.event_ids,
                       detail=f"{detail}contacted at {late.contacted_at.isoformat()}, listed at {late.listed_at.isoformat()} "
                              f"({late.kind.value}, {late.source})")


def funds_warning_alert(signal: EnrichedSignal, event_id: str, ev: Evaluation, state: PersonState, where,
                        rules_version: str, late: ReachBack | None = None) -> Alert:
    mule = max((h for h in signal.intel if h.kind is IntelKind.mule_account), key=lambda h: h.confidence)
    detail = "transfer to a listed mule account (资金预警)"
    if late is not None:
        detail = (f"transfer to an account listed as a mule after it (资金预警): transferred at "
                  f"{late.contacted_at.isoformat()}, listed at {late.listed_at.isoformat()} ({late.source})")
    trigger = FiredSignal(rule="mule_transfer", weight=100, event_ids=[event_id], detail=detail)
    context = [f for f in ev.fired if event_id not in f.event_ids]
    ev_with_type = Evaluation(ev.score, ev.fired, Tier.funds_warning, mule.typology, ev.first_signal_t)
    account = _account(signal)
    accounts = ([account] if account else []) + [a for a in state.accounts if a != account]
    alert = _alert(signal, f"{signal.person_id}-F-{event_id}", 1, Tier.funds_warning, ev_with_type, [trigger, *context],
                   state, where, rules_version, reach_back=late)
    alert.accounts = accounts
    alert.score = 100 + ev.score
    return alert


def _alert(signal, alert_id, version, tier, ev: Evaluation, fired, state: PersonState, where, rules_version: str,
           previous_tier=None, reach_back: ReachBack | None = None) -> Alert:
    now = datetime.now(UTC)
    first = datetime.fromtimestamp(ev.first_signal_t or signal.event_time.timestamp(), UTC)
    return Alert(
        alert_id=alert_id,
        version=version,
        person_id=signal.person_id,
        identity_resolved=signal.identity_resolved,
        tier=tier,
        typology=ev.typology,
        score=ev.score,
        signals=fired,
        jurisdiction=where,
        vulnerability=signal.vulnerability,
        first_signal_at=first,
        alert_at=now,
        rules_version=rules_version,
        phone=state.phone,
        carrier=state.carrier,
        accounts=list(state.accounts),
        previous_tier=previous_tier,
        late_events=state.late_events,
        reach_back=reach_back,
    )


async def publish(alert: Alert) -> None:
    await ALERTS.send(key=alert.person_id.encode(), value=ENCODER.encode(alert))
    ALERTS_TOTAL.labels(alert.tier.value, alert.typology.value, alert.jurisdiction.county).inc()
    SIGNAL_TO_ALERT.observe(max(0.0, (alert.alert_at - alert.first_signal_at).total_seconds()))
    if alert.reach_back is not None:
        RETRO_ALERTS.labels(alert.reach_back.kind.value, alert.reach_back.source).inc()
    log.info(
        "alert %s v%d %s %s score %.0f (%s)",
        alert.alert_id, alert.version, alert.tier.value, alert.typology.value, alert.score,
        ", ".join(s.rule for s in alert.signals),
    )


def _carrier(signal: EnrichedSignal) -> str | None:
    return signal.telecom.carrier.value if signal.telecom is not None else None


def _account(signal: EnrichedSignal) -> AccountRef | None:
    if signal.bank is None:
        return None
    return AccountRef(bank=signal.bank.bank, account=signal.bank.account)


# The shadow judges with these (agents/correlate_shadow.py): handed over, so that it does not import this module.
SHADOW_JUDGES = correlate_shadow.Judges(RECHECK_TOPIC, RECHECK_DECODER.decode, DECODER.decode, judge_signal,
                                        judge_recheck)
