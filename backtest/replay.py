"""Replay a recorded history through one or more rules versions, in process, off the live path.

Each record takes the path it takes on the platform, through the stages' own pure code:

    ingest      agents.ingest.validate_message (the same validation and normalization)
    reference   streams.reference.write_for into an in-memory copy of what the loader keeps in
                Valkey (newest update wins, a delete leaves a tombstone), and the contact index
    enrich      agents.enrich.lookup_request / enriched_signal over streams.reference.resolve
    late intel  streams.reference.reach_back_contacts and agents.reference_loader.recheck_of
    correlate   agents.correlate.judge_signal / judge_recheck on the person's state (as the table holds it)
    route       streams.dissuasion.plan_for_alert, one send per alert, tier and channel (the Valkey slot)

Enrichment is done once per record and shared; every version keeps its own person states,
slots and results. The clock is the history's: each record is judged at its own event time,
so a week replays in minutes. Not replayed: channel outcomes and escalation (a backtest has
no resident to answer), the contact policy of the channel workers, and Kafka's interleaving
of partitions (the history is one ordered stream).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from agents.correlate import judge_recheck, judge_signal
from agents.enrich import enriched_signal, lookup_request
from agents.ingest import Accepted, validate_message
from agents.reference_loader import recheck_of
from backtest.history import TRUTH, FraudTruth, decode_truth
from oversight.audit_worker import persons_of_victim
from streams.alerting import already_seen, dump, load
from streams.catalog import get_catalog
from streams.contracts import (
    AppReport,
    BankEvent,
    CaseReport,
    EnrichedSignal,
    Ingested,
    IntelUpdate,
    RegistryUpdate,
    TelecomEvent,
)
from streams.contracts.actions import Channel
from streams.contracts.alerts import Alert, Tier
from streams.contracts.common import Typology
from streams.dissuasion import plan_for_alert
from streams.reference import (
    CONTACT_KINDS,
    Contact,
    ReferenceWrite,
    contacts_of,
    decode_record,
    epoch_ms,
    reach_back_contacts,
    resolve,
    write_for,
)
from streams.routing import Partners, Routing
from streams.rules import Rules
from streams.scoring import evidence_of, fact_of

SWEEP_EVERY_S = 6 * 3600  # how often (history time) contacts older than every reach-back window are forgotten
# The history's clock is not the wall clock: no recorded event is "from the future" for ingest.
NO_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_DECODE_SIGNAL = msgspec.json.Decoder(EnrichedSignal).decode


class MemoryReference:
    """What the reference loader keeps in Valkey, in a dict: records, tombstones and the contact index."""

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}  # key -> the record as Valkey holds it (the audit's registry reads these)
        self.records: dict[str, object] = {}
        self.versions: dict[str, int] = {}
        self.removed_at: dict[str, int] = {}
        self.contacts: dict[str, list[Contact]] = {}

    def apply(self, update: IntelUpdate | RegistryUpdate, now_ms: int) -> ReferenceWrite | None:
        """streams.reference's write rule: the newest event time wins, a tombstone keeps older upserts out.
        Returns the write when it was applied."""
        write = write_for(update, now_ms)
        if self.versions.get(write.key, -1) > write.event_time_ms or self.removed_at.get(write.key, -1) > write.event_time_ms:
            return None
        if write.record is None:
            for table in (self.raw, self.records, self.versions):
                table.pop(write.key, None)
            self.removed_at[write.key] = write.event_time_ms
            return write
        self.raw[write.key] = write.record
        self.records[write.key] = decode_record(write.key, write.record)
        self.versions[write.key] = write.event_time_ms
        self.removed_at.pop(write.key, None)
        return write

    def get(self, key: str) -> bytes | None:
        """As a Valkey client's GET: oversight.audit_worker.persons_of_victim reads the registry through it."""
        return self.raw.get(key)

    def lookup(self, keys: Iterable[str]) -> dict[str, object]:
        records = self.records
        return {key: records.get(key) for key in keys}

    def register(self, contacts: list[Contact]) -> None:
        for contact in contacts:
            self.contacts.setdefault(contact.entry_key, []).append(contact)

    def forget_before(self, horizon_ms: int) -> None:
        for key in list(self.contacts):
            kept = [c for c in self.contacts[key] if c.event_time_ms >= horizon_ms]
            if kept:
                self.contacts[key] = kept
            else:
                del self.contacts[key]


@dataclass(frozen=True, slots=True)
class Raised:
    """One alert version as the backtest keeps it."""

    person_id: str
    tier: Tier
    typology: Typology
    at: float  # history time (epoch s) of the record that raised it
    retro: bool  # raised by late intelligence (回溯预警)


@dataclass(frozen=True, slots=True)
class Case:
    case_id: str
    persons: frozenset[str]
    occurred_at: float
    filed_at: float
    typology: str


@dataclass
class VersionRun:
    """One rules version's replay: its states, its slots and what it raised and sent."""

    name: str
    rules: Rules
    routing: Routing
    partners: Partners
    states: dict[str, bytes] = field(default_factory=dict)
    slots: set[str] = field(default_factory=set)
    alerts: list[Raised] = field(default_factory=list)
    actions: dict[Channel, int] = field(default_factory=dict)

    def take(self, alerts: list[Alert], now: float) -> None:
        for alert in alerts:
            # Stamped as the version under test and at history time (the agent stamps the live ones).
            alert.rules_version, alert.alert_at = self.rules.version, datetime.fromtimestamp(now, UTC)
            self.alerts.append(Raised(alert.person_id, alert.tier, alert.typology, now, alert.reach_back is not None))
            _tier, planned = plan_for_alert(alert, self.routing, self.partners)
            for p in planned:
                if p.slot is not None:
                    if p.slot in self.slots:
                        continue  # route's Valkey slot: this alert, tier and channel was already sent
                    self.slots.add(p.slot)
                self.actions[p.action.channel] = self.actions.get(p.action.channel, 0) + 1


@dataclass
class Replayed:
    runs: list[VersionRun]
    cases: list[Case]
    truths: list[FraudTruth]
    residents: int
    start: float
    end: float
    records: int = 0
    refused: int = 0  # records ingest would dead-letter
    signals: int = 0


class Replay:
    def __init__(self, runs: list[VersionRun], start: datetime | None = None, end: datetime | None = None) -> None:
        self.runs = runs
        self.start, self.end = start, end
        self.reference = MemoryReference()
        self.names = {spec.id: spec.name for spec in get_catalog().of_kind("input")}
        self.window_s = max(run.rules.reach_back.window_s for run in runs)
        self._offset = 0

    def run(self, records: Iterable[tuple[str, bytes]], residents: int,
            progress: Callable[[int], None] = lambda n: None) -> Replayed:
        out = Replayed(self.runs, [], [], residents, 0.0, 0.0)
        first_t = last_t = None
        next_sweep = None
        for topic_id, value in records:
            if topic_id == TRUTH:
                truth = decode_truth(value)
                if self._within(truth.started_at):
                    out.truths.append(truth)
                continue
            out.records += 1
            if out.records % 2000 == 0:
                progress(2000)
            judged = validate_message(self.names[topic_id], value, NO_FUTURE)
            if not isinstance(judged, Accepted):
                out.refused += 1
                continue
            event = judged.event
            t = event.event_time.timestamp()
            if isinstance(event, IntelUpdate | RegistryUpdate):
                if self.end is None or event.event_time < self.end:
                    self._reference(event, t)
                continue
            if not self._within(event.event_time):
                continue
            first_t = t if first_t is None else first_t
            last_t = t
            if isinstance(event, CaseReport):
                out.cases.append(self._case(event))
                continue
            if next_sweep is None or t >= next_sweep:
                self.reference.forget_before(int((t - self.window_s) * 1000))
                next_sweep = t + SWEEP_EVERY_S
            out.signals += 1
            self._signal(topic_id, event, t)
        progress(out.records % 2000)
        out.start, out.end = first_t or 0.0, last_t or 0.0
        if self.start is not None:
            out.start = self.start.timestamp()
        if self.end is not None:
            out.end = self.end.timestamp()
        return out

    def _within(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)

    def _reference(self, update: IntelUpdate | RegistryUpdate, t: float) -> None:
        now_ms = int(t * 1000)
        write = self.reference.apply(update, now_ms)
        # As the loader: only an applied upsert of an exactly matched list reaches back (a delete does not).
        if write is None or write.record is None or not isinstance(update, IntelUpdate) or update.kind not in CONTACT_KINDS:
            return
        touched = self.reference.contacts.get(write.key, [])
        if not touched:
            return
        for run in self.runs:  # the loader hands the residents who touched it to correlate (agents/reference_loader.py)
            rb = run.rules.reach_back
            at_once, paced = reach_back_contacts(touched, epoch_ms(update.event_time), now_ms, rb.window_s,
                                                 rb.fresh_listing_s)
            for contact, reach_back in [(c, False) for c in at_once] + [(c, True) for c in paced]:
                recheck = recheck_of(update, contact, reach_back)
                state = load(run.states.get(recheck.person_id))
                judgement = judge_recheck(state, recheck, run.rules)
                if judgement.changed:
                    run.take(judgement.alerts, t)
                    run.states[recheck.person_id] = dump(state)

    def _signal(self, topic_id: str, event: TelecomEvent | BankEvent | AppReport, t: float) -> None:
        self._offset += 1
        envelope = Ingested(event=event, ingested_at=event.event_time, source_topic=self.names[topic_id],
                            source_partition=0, source_offset=self._offset)
        request = lookup_request(event)
        now_ms = int(t * 1000)
        signal = enriched_signal(envelope, resolve(request, self.reference.lookup(request.keys()), now_ms))
        self.reference.register(contacts_of(request, signal.person_id, signal.event_id, now_ms,
                                            lambda: evidence_of(fact_of(signal))))
        raw = msgspec.json.encode(signal) if len(self.runs) > 1 else None
        for n, run in enumerate(self.runs):
            # judge_signal adds held hits to the signal: each version gets its own copy
            mine = signal if raw is None or n == len(self.runs) - 1 else _DECODE_SIGNAL(raw)
            state = load(run.states.get(mine.person_id))
            if already_seen(state, mine.event_id):
                continue
            run.take(judge_signal(state, mine, run.rules).alerts, t)
            run.states[mine.person_id] = dump(state)

    def _case(self, case: CaseReport) -> Case:
        return Case(case.case_id, frozenset(persons_of_victim(self.reference, case)), case.occurred_at.timestamp(),
                    case.event_time.timestamp(), case.typology.value)


def replay_file(path: Path, runs: list[VersionRun], residents: int, start: datetime | None = None,
                end: datetime | None = None, progress: Callable[[int], None] = lambda n: None) -> Replayed:
    from backtest.history import read_records

    return Replay(runs, start, end).run(read_records(path), residents, progress)
