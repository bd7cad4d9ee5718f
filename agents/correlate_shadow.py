"""Correlate in shadow: the candidate rules judge the same events against their own person state.

    signals_enriched / signals_recheck ──(the live judgement first)──> person_state_shadow ──> alerts_shadow

Only when a candidate is set (`antifraud rules shadow`, streams/rules_shadow.py). Its alerts go
to alerts_shadow and nowhere else: no route, no escalation, no action topic reads it. The live
state (person_state) is never read or written here, and a new candidate starts from empty states
(each state is tagged with the candidate that wrote it). A fault in the shadow is logged and counted
and never touches the live judgement, which has already been published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from prometheus_client import Counter

from streams.alerting import PersonState, already_seen, dump, load
from streams.app import sink_topic, table
from streams.isolation import about_a_record
from streams.rules_versions import RuleSet

log = logging.getLogger(__name__)

ENCODER = msgspec.json.Encoder()
SHADOW_ALERTS_TOPIC = sink_topic("alerts_shadow")
SHADOW_ALERTS = Counter("antifraud_shadow_alerts_total", "Alerts the candidate rules in shadow raised",
                        ["tier", "version"])
SHADOW_FAILURES = Counter("antifraud_shadow_failures_total",
                          "Records the shadow could not judge (the live judgement is unaffected)", [])

person_state_shadow = table("person_state_shadow", value_type=bytes, default=bytes)  # never the live state


class Judges(NamedTuple):
    """correlate's decoders and pure judgement, handed in by correlate (which imports this module, not the reverse)."""

    recheck_topic: str
    decode_recheck: Callable[[bytes], Any]
    decode_signal: Callable[[bytes], Any]
    judge_signal: Callable
    judge_recheck: Callable


def state_of(raw: bytes | None, version: str) -> PersonState:
    """The person's state as this candidate left it; one left by an earlier candidate is not carried over."""
    tag = _tag(version)
    return load(raw[len(tag):] if raw and raw.startswith(tag) else None)


def stored(state: PersonState, version: str) -> bytes:
    return _tag(version) + dump(state)


def _tag(version: str) -> bytes:
    return version.encode() + b"\0"  # a version id never holds a NUL; JSON state never starts with one


async def judge_in_shadow(event, candidate: RuleSet, judges: Judges) -> None:
    """The event judged again by the candidate; the caller has already pointed the tables at its partition."""
    try:
        await _judge(event, candidate, judges)
    except Exception as exc:
        if not about_a_record(exc):
            raise
        SHADOW_FAILURES.inc()
        log.error("correlate shadow: record at %s:%d:%d not judged by the candidate (%s)", event.message.topic,
                  event.message.partition, event.message.offset, type(exc).__name__)


async def _judge(event, candidate: RuleSet, judges: Judges) -> None:
    rules = candidate.rules
    # Decoded again: judge_signal adds held hits to the signal, and the live judgement had its own copy.
    if event.message.topic == judges.recheck_topic:
        recheck = judges.decode_recheck(event.message.value)
        state = state_of(person_state_shadow[recheck.person_id], candidate.version)
        judgement = judges.judge_recheck(state, recheck, rules)
        if not judgement.changed:
            return
        person_id = recheck.person_id
    else:
        signal = judges.decode_signal(event.message.value)
        state = state_of(person_state_shadow[signal.person_id], candidate.version)
        if already_seen(state, signal.event_id):
            return
        judgement = judges.judge_signal(state, signal, rules)
        person_id = signal.person_id
    for alert in judgement.alerts:
        await SHADOW_ALERTS_TOPIC.send(key=alert.person_id.encode(), value=ENCODER.encode(alert))
        SHADOW_ALERTS.labels(alert.tier.value, alert.rules_version).inc()
    person_state_shadow[person_id] = stored(state, candidate.version)
