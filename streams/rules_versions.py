"""The rules version in force in this process, switched without a restart (docs/rules.md).

    rules_versions (compacted, one partition) ──Follower thread──> IN_FORCE.current ──> every stage

`antifraud rules publish` sends rules.yaml and routing.yaml together as one RulesVersion,
keyed by its version id; the last record on the topic is the version in force (a rollback
sends an older version again, so it becomes the last). Every worker process reads the
whole topic before its stages start (a restarted worker judges by the version in force,
not by the shipped files) and then follows it in a thread.

The switch is one reference swap of a fully validated RuleSet (rules and routing
together): a stage takes `IN_FORCE.current` once at the start of each micro-batch (or
event) and judges the whole batch by that one object, so no batch is judged by two
versions, and none by a rules file without its routing. With nothing published, the
shipped rules.yaml and routing.yaml are the version in force.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge

from streams.catalog import get_catalog
from streams.contracts.rules_versions import RulesVersion
from streams.kafka import consumer_config
from streams.routing import Routing, get_routing, parse_routing
from streams.rules import Rules, get_rules, parse_rules
from streams.settings import Settings
from streams.yamlconfig import ConfigError

log = logging.getLogger(__name__)

TOPIC_ID = "rules_versions"
DECODE = msgspec.json.Decoder(RulesVersion).decode
POLL_S = 0.5  # how long a switch can wait for the follower, at most (plus the broker's fetch)

IN_FORCE_INFO = Gauge("antifraud_rules_version_in_force", "1 for the rules version this process judges by", ["version"])
SWITCHES = Counter("antifraud_rules_version_switches_total", "Switches to a published rules version", [])
REFUSED = Counter("antifraud_rules_versions_refused_total",
                  "Records on the rules versions topic refused (undecodable or invalid); the version in force stays", [])


@dataclass(frozen=True, eq=False)
class RuleSet:
    """One version: its rules and its routing, validated together; never changed once built."""

    version: str
    rules: Rules
    routing: Routing
    published: RulesVersion | None = None  # None: the shipped files (nothing published)


def rule_set_of(record: RulesVersion) -> RuleSet:
    """Validated exactly as the files are; ConfigError names the document, the line and what is wrong."""
    rules = parse_rules(record.rules, Path(f"rules.yaml@{record.version}"))
    routing = parse_routing(record.routing, Path(f"routing.yaml@{record.version}"))
    if rules.version != record.version:
        raise ConfigError(f"version {record.version!r} carries rules whose version is {rules.version!r}")
    return RuleSet(record.version, rules, routing, record)


def is_valid(record: RulesVersion) -> bool:
    """Whether a worker would take it (one that would not is refused and the version in force stays)."""
    try:
        rule_set_of(record)
    except ConfigError:
        return False
    return True


def shipped_rule_set(settings: Settings | None = None) -> RuleSet:
    rules = get_rules()
    return RuleSet(rules.version, rules, get_routing(settings))


class RulesInForce:
    """The holder: `current` is replaced whole, never edited, so a reader holds one consistent version."""

    def __init__(self, initial: RuleSet) -> None:
        self._current = initial
        IN_FORCE_INFO.labels(initial.version).set(1)

    @property
    def current(self) -> RuleSet:
        return self._current

    def switch_to(self, record: RulesVersion) -> RuleSet:
        """Validate first; only a whole, valid version replaces the one in force (one reference swap)."""
        new = rule_set_of(record)
        old, self._current = self._current, new
        if old.version != new.version:
            IN_FORCE_INFO.labels(old.version).set(0)
            IN_FORCE_INFO.labels(new.version).set(1)
            SWITCHES.inc()
            log.info("rules: version %s in force (was %s), published by %s: %s", new.version, old.version,
                     record.published_by, record.why)
        return new


_holder: RulesInForce | None = None
_holder_lock = threading.Lock()


def in_force() -> RulesInForce:
    """This process's holder, built on first use (importing this module reads no file): the shipped
    files until a published version is read."""
    global _holder
    with _holder_lock:
        if _holder is None:
            _holder = RulesInForce(shipped_rule_set())
        return _holder


# ------------------------------------------------------------------------- reading the topic
def _reader(settings: Settings, topic_id: str = TOPIC_ID) -> tuple[Consumer, TopicPartition]:
    topic = get_catalog(settings.topics_file).topic(topic_id).name
    # assign(), no group: every process reads every version, and nothing is committed.
    consumer = Consumer(consumer_config(settings, group_id="antifraud-rules-versions", **{"enable.partition.eof": True}))
    tp = TopicPartition(topic, 0, OFFSET_BEGINNING)
    consumer.assign([tp])
    return consumer, tp


def decode_version(value: bytes | None) -> RulesVersion | None:
    try:
        return DECODE(value or b"")
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def read_versions(settings: Settings, timeout_s: float = 15.0) -> list[RulesVersion]:
    """Every record now on the topic, in offset order (the last is in force); undecodable ones left out."""
    consumer, tp = _reader(settings)
    try:
        _low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
        found, deadline, position = [], time.monotonic() + timeout_s, 0
        while position < high:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rules versions: read {position} of {high} records in {timeout_s:.0f} s")
            message = consumer.poll(POLL_S)
            if message is None or message.error():
                continue
            position = message.offset() + 1
            record = decode_version(message.value())
            if record is not None:
                found.append(record)
        return found
    finally:
        consumer.close()


class Follower:
    """Reads the topic into a holder: all of it before the stages start, then what comes, in a thread.

    One reader from first to last: following on from where the catch-up stopped never applies an
    older version again on the way to the one in force."""

    topic_id = TOPIC_ID  # streams/rules_shadow.py follows its own topic the same way

    def __init__(self, settings: Settings, holder) -> None:
        self.settings, self.holder = settings, holder
        self.consumer, self.tp = _reader(settings, self.topic_id)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def decode(self, value: bytes | None) -> RulesVersion | None:
        return decode_version(value)

    def apply(self, value: bytes | None) -> None:
        record = self.decode(value)
        if record is None:
            REFUSED.inc()
            log.error("rules: an undecodable record on the %s topic; what is in force stays", self.topic_id)
            return
        try:
            self.holder.switch_to(record)
        except ConfigError as exc:  # written by something other than `antifraud rules publish` (or `shadow`)
            REFUSED.inc()
            log.error("rules: a record on the %s topic refused, what is in force stays: %s", self.topic_id, exc)

    def catch_up(self, timeout_s: float = 30.0) -> int:
        """Apply every record now on the topic (the last valid one is in force); the count read."""
        deadline = time.monotonic() + timeout_s
        high = self._end_offset(deadline)
        position, read = 0, 0
        while position < high and time.monotonic() < deadline:
            message = self.consumer.poll(POLL_S)
            if message is not None and not message.error():
                position, read = message.offset() + 1, read + 1
                self.apply(message.value())
        if position < high:
            log.warning("rules: reached offset %d of %d on the rules versions topic before starting", position, high)
        return read

    def _end_offset(self, deadline: float) -> int:
        # A fresh broker (or one whose leader moved) answers NOT_LEADER for a moment: asked again until the
        # deadline, so that a restarted worker does not start judging by the shipped files for that moment.
        while True:
            try:
                return self.consumer.get_watermark_offsets(self.tp, timeout=max(0.1, deadline - time.monotonic()),
                                                           cached=False)[1]
            except KafkaException:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(POLL_S)

    def start(self) -> Follower:
        self.thread = threading.Thread(target=self._follow, name=self.topic_id, daemon=True)
        self.thread.start()
        return self

    def _follow(self) -> None:
        try:
            while not self.stop.is_set():
                message = self.consumer.poll(POLL_S)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("rules: reading the rules versions topic: %s", message.error())
                    continue
                try:
                    self.apply(message.value())
                except Exception:  # a bug on one record: that record refused, the follower goes on
                    REFUSED.inc()
                    log.exception("rules: the record at offset %d was not applied; the version in force stays",
                                  message.offset())
        finally:
            self.consumer.close()


def follow_rules_versions(settings: Settings, holder: RulesInForce | None = None) -> Follower:
    """What a worker calls before its stages start."""
    follower = Follower(settings, holder or in_force())
    try:
        applied = follower.catch_up()
    except KafkaException as exc:  # e.g. the topic not created yet: the thread keeps trying
        applied = 0
        log.warning("rules: the rules versions topic could not be read before starting (%s)", exc)
    log.info("rules: %d published version record(s) read; version %s in force", applied,
             follower.holder.current.version)
    return follower.start()
