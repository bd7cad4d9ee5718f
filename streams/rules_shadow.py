"""The candidate rules version in shadow: judged beside the one in force, never acting (docs/rules.md).

    rules_shadow (compacted, one key) ──ShadowFollower thread──> in_shadow().current ──> agents/correlate_shadow.py

`antifraud rules shadow FILE` checks a candidate exactly as `publish` does and sends it as a
RulesShadow record; `--stop` sends one without a candidate. The last record holds. With no
candidate (the usual case) correlate does no extra work: it reads one attribute per batch.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from confluent_kafka import KafkaException
from prometheus_client import Gauge

from streams.contracts.rules_versions import RulesShadow
from streams.rules_publishing import ENCODE, Refused, draft, known_versions, produce
from streams.rules_versions import Follower, RuleSet, rule_set_of
from streams.settings import Settings

log = logging.getLogger(__name__)

TOPIC_ID = "rules_shadow"
KEY = b"shadow"
DECODE = msgspec.json.Decoder(RulesShadow).decode
IN_SHADOW_INFO = Gauge("antifraud_rules_version_in_shadow", "1 for the candidate rules version judged in shadow",
                       ["version"])


class RulesInShadow:
    """`current` is the candidate's RuleSet or None, replaced whole (as RulesInForce)."""

    def __init__(self) -> None:
        self.current: RuleSet | None = None

    def switch_to(self, record: RulesShadow) -> RuleSet | None:
        new = rule_set_of(record.candidate) if record.candidate is not None else None  # validated first
        old, self.current = self.current, new
        if old is not None:
            IN_SHADOW_INFO.labels(old.version).set(0)
        if new is not None:
            IN_SHADOW_INFO.labels(new.version).set(1)
        log.info("rules: %s in shadow (was %s), set by %s: %s", new.version if new else "nothing",
                 old.version if old else "nothing", record.set_by, record.why)
        return new


_holder = RulesInShadow()


def in_shadow() -> RulesInShadow:
    return _holder


class ShadowFollower(Follower):
    topic_id = TOPIC_ID

    def decode(self, value: bytes | None) -> RulesShadow | None:
        try:
            return DECODE(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None


def follow_rules_shadow(settings: Settings, holder: RulesInShadow | None = None) -> ShadowFollower:
    """What a worker calls before its stages start (after follow_rules_versions)."""
    follower = ShadowFollower(settings, holder or in_shadow())
    try:
        follower.catch_up()
    except KafkaException as exc:  # e.g. the topic not created yet: the thread keeps trying
        log.warning("rules: the rules shadow topic could not be read before starting (%s)", exc)
    return follower.start()


# ------------------------------------------------------------------------- `antifraud rules shadow`
def set_shadow(settings: Settings, rules_file: Path, routing_file: Path | None, by: str, why: str) -> RulesShadow:
    """The candidate, checked exactly as `antifraud rules publish` checks a version, put in shadow."""
    candidate = draft(settings, rules_file, routing_file, by, why, known_versions(settings))
    record = RulesShadow(candidate=candidate, set_by=candidate.published_by, set_at=candidate.published_at,
                         why=candidate.why)
    produce(settings, TOPIC_ID, KEY, ENCODE(record), f"shadow {candidate.version}")
    return record


def stop_shadow(settings: Settings, by: str, why: str) -> RulesShadow:
    if not by.strip() or not why.strip():
        raise Refused("--by and --why must say who stops the shadow and why")
    record = RulesShadow(candidate=None, set_by=by.strip(), set_at=datetime.now(UTC), why=why.strip())
    produce(settings, TOPIC_ID, KEY, ENCODE(record), "the shadow's stop")
    return record


