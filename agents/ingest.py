"""Ingest: every input message ends in exactly one place.

    input topic ──validate──> normalized topic   (valid, first sighting of its event_id)
                └──────────> dead-letter topic   (with original bytes, offset and reason)
                └──────────> dropped duplicate   (counted)

Decoding is total: any bytes end as an accepted event or a dead letter with a documented
reason, never an exception; an unexpected failure on one record dead-letters it
(`internal_error`, streams.isolation) and the stage goes on. Record keys are never decoded.

Micro-batches: one Valkey round trip claims the event ids of a whole batch, and its
records leave together, one record batch per partition (streams.outbox). The
ingest_tally table keeps exact per-partition counts that survive restarts; it skips
offsets it has already counted, so a redelivery after a crash is not counted twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from streams import metrics
from streams.app import app, catalog, outbox, settings, sink_topic, source_topic, table, timed_batches, write_tables_for
from streams.contracts import (
    AppReport,
    BankEvent,
    CaseReport,
    DeadLetter,
    DeadLetterReason,
    Ingested,
    IntelUpdate,
    RegistryUpdate,
    TelecomEvent,
    contract,
)
from streams.dead_letters import Rejected, decode_failure, of_faust_message
from streams.dedup import Claim, claim_all
from streams.isolation import about_a_record, isolated, record_failed, stops_worker_on_crash
from streams.redrive import REPLAY_HEADER, replay_of
from streams.valkey import async_client, until_valkey_answers

log = logging.getLogger(__name__)

STAGE = "ingest"
INPUTS = {spec.name: spec for spec in catalog.of_kind("input")}
DECODERS = {name: msgspec.json.Decoder(contract(spec.contract)) for name, spec in INPUTS.items()}
SINKS = {name: sink_topic(spec.normalized_to) for name, spec in INPUTS.items()}
ENCODINGS = {name: spec.encoding for name, spec in INPUTS.items()}
DEAD_LETTERS = sink_topic("dead_letter")
ENCODER = msgspec.json.Encoder()


# ---------------------------------------------------------------- the pure part: judging one message
@dataclass(frozen=True, slots=True)
class Accepted:
    event: msgspec.Struct


def validate_message(topic_name: str, value: bytes | None, now: datetime) -> Accepted | Rejected:
    """Decode, validate and normalize one input message, or say why it cannot be accepted. Never raises
    (but for MemoryError): a failure of its own is the record's `internal_error`."""
    try:
        return _validate(topic_name, value, now)
    except Exception as exc:
        if not about_a_record(exc):
            raise
        return record_failed(STAGE, topic_name, exc)


def _validate(topic_name: str, value: bytes | None, now: datetime) -> Accepted | Rejected:
    if not value:
        return Rejected(DeadLetterReason.empty, "empty message")
    if len(value) > settings.max_event_bytes:
        return Rejected(DeadLetterReason.oversized, f"{len(value)} bytes > max_event_bytes {settings.max_event_bytes}")
    if ENCODINGS[topic_name] != "utf-8":
        try:
            value = value.decode(ENCODINGS[topic_name]).encode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(DeadLetterReason.not_utf8,
                            f"message is not {ENCODINGS[topic_name]} (the topic's declared encoding): "
                            f"invalid byte at {exc.start}")
    try:
        event = DECODERS[topic_name].decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # msgspec raises UnicodeDecodeError, not a DecodeError, for a JSON string that is not UTF-8
        # (GBK text from a feed that did not declare it): the record's fault, with its reason.
        return decode_failure(exc, value)
    if event.event_time > now + timedelta(seconds=settings.max_future_skew_s):
        return Rejected(
            DeadLetterReason.future_timestamp,
            f"event_time is more than {settings.max_future_skew_s:.0f} s in the future",
        )
    return Accepted(event)


# Key of each normalized record: the resident's identifier, so one person's events stay in order.
PARTITION_KEY = {
    TelecomEvent: lambda e: e.subscriber,
    BankEvent: lambda e: e.account,
    AppReport: lambda e: e.reporter_phone,
    CaseReport: lambda e: e.victim_phone or e.victim_account,
    IntelUpdate: lambda e: f"{e.kind.value}:{e.value}",
    RegistryUpdate: lambda e: f"{e.identifier_kind.value}:{e.identifier}",
}


def partition_key(event: msgspec.Struct) -> bytes:
    return PARTITION_KEY[type(event)](event).encode()


def dead_letter(message, rejected: Rejected, now: datetime) -> DeadLetter:
    return of_faust_message(STAGE, message, rejected, now, settings.max_event_bytes)


# --------------------------------------------------------------------------------- the agent
ingest_tally = table("ingest_tally", default=dict)


# Lists and registries arrive in bulk (a ministry list of 100,000 entries at once): in one agent
# with the live inputs, live events queued behind the whole list. They go in their own, in the
# background (streams.live_first).
LIVE_INPUTS = [spec.id for spec in INPUTS.values() if spec.domain != "reference"]
REFERENCE_INPUTS = [spec.id for spec in INPUTS.values() if spec.domain == "reference"]


@app.agent(source_topic(*LIVE_INPUTS), name="ingest")
@stops_worker_on_crash(app)
async def ingest(stream):
    await ingest_stream(stream, STAGE, settings.ingest_batch_size)


@app.agent(source_topic(*REFERENCE_INPUTS), name="ingest_reference")
@stops_worker_on_crash(app)
async def ingest_reference(stream):
    await ingest_stream(stream, f"{STAGE}_reference", settings.reference_batch_size, background=True)


async def ingest_stream(stream, label: str, size: int, background: bool = False) -> None:
    """Every micro-batch of `stream` ingested; `label` names its batches in the metrics."""
    valkey = async_client(settings)
    async for batch in timed_batches(stream, label, size, settings.ingest_batch_within_s, background=background):
        await isolated(STAGE, batch, lambda events: ingest_batch(events, valkey), dead_letter_alone)


@dataclass(frozen=True, slots=True)
class Normalized:
    """An accepted event ready to leave: its event id (for dedup), partition key and encoded envelope."""

    event_id: str
    key: bytes
    value: bytes


def normalized(message, verdict: Accepted, now: datetime) -> Normalized | Rejected:
    """The normalized record of an accepted event; the record's internal_error if building it fails."""
    try:
        envelope = Ingested(
            event=verdict.event,
            ingested_at=now,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
        )
        return Normalized(verdict.event.event_id, partition_key(verdict.event), ENCODER.encode(envelope))
    except Exception as exc:
        if not about_a_record(exc):
            raise
        return record_failed(STAGE, f"{message.topic}:{message.partition}:{message.offset}", exc)


async def ingest_batch(batch, valkey) -> None:
    now = datetime.now(UTC)
    verdicts = [validate_message(ev.message.topic, ev.message.value, now) for ev in batch]
    verdicts = [normalized(ev.message, v, now) if isinstance(v, Accepted) else v for ev, v in zip(batch, verdicts)]
    fresh = await claim_event_ids(batch, verdicts, valkey)
    out = outbox()
    again: list[tuple] = []  # dead letters of replayed records (streams.redrive)
    outcomes: list[str] = []  # one per event of the batch, in batch order
    for ev, verdict in zip(batch, verdicts):
        message = ev.message
        source = INPUTS[message.topic].id
        metrics.EVENTS_IN.labels(source).inc()
        if isinstance(verdict, Rejected):
            outcome = "dead_lettered"
            metrics.EVENTS_INVALID.labels(source, verdict.reason.value).inc()
            add_dead_letter(out, again, message, source, dead_letter(message, verdict, now))
        elif fresh[id(ev)]:
            outcome = "accepted"
            metrics.EVENTS_ACCEPTED.labels(source).inc()
            out.add(SINKS[message.topic], verdict.key, verdict.value)
        else:
            outcome = "duplicates"
            metrics.DUPLICATES.labels(source).inc()
        metrics.STAGE_LATENCY.labels(STAGE).observe(max(0.0, now.timestamp() - message.timestamp))
        outcomes.append(outcome)
    await out.send()
    await send_replays_refused_again(again)
    count_batch_in_tally(batch, outcomes)


async def dead_letter_alone(ev, rejected: Rejected) -> None:
    """A record ingest_batch raised on even alone (streams.isolation): dead-lettered and counted like any."""
    message, now = ev.message, datetime.now(UTC)
    source = INPUTS[message.topic].id
    metrics.EVENTS_IN.labels(source).inc()
    metrics.EVENTS_INVALID.labels(source, rejected.reason.value).inc()
    out, again = outbox(), []
    add_dead_letter(out, again, message, source, dead_letter(message, rejected, now))
    await out.send()
    await send_replays_refused_again(again)
    count_batch_in_tally([ev], ["dead_lettered"])


def add_dead_letter(out, again: list, message, source: str, letter: DeadLetter) -> None:
    """To the outbox; a replayed record's dead letter aside, to keep its replay header (sent by the next call)."""
    replayed = replay_of(message.headers)
    if replayed is None:
        out.add(DEAD_LETTERS, source.encode(), ENCODER.encode(letter))
    else:
        again.append((source.encode(), ENCODER.encode(letter), replayed))


async def send_replays_refused_again(again: list) -> None:
    """A replay refused again keeps `antifraud-replay-of`: `dead-letters replay` then sends it no more (no loop).
    Rare (only after a replay), so one Faust send each; Faust flushes them before it commits, like the outbox."""
    for key, value, replayed in again:
        await DEAD_LETTERS.send(key=key, value=value, headers=[(REPLAY_HEADER, replayed.encode())])


async def claim_event_ids(batch, verdicts, valkey) -> dict[int, bool]:
    """One pipeline for the batch: which accepted events are first sightings (or our own redelivery).

    The event id comes from the verdict (the decoded event), never from the record key.
    """
    pairs = [(ev, v) for ev, v in zip(batch, verdicts) if isinstance(v, Normalized)]
    claims = [
        Claim(
            key=f"dedup:{INPUTS[ev.message.topic].id}:{v.event_id}",
            owner=f"{ev.message.topic}:{ev.message.partition}:{ev.message.offset}",
        )
        for ev, v in pairs
    ]
    ours = await until_valkey_answers(STAGE, settings, lambda: claim_all(valkey, claims, settings.dedup_window_s))
    return {id(ev): mine for (ev, _), mine in zip(pairs, ours)}


def tally_key(ev) -> str:
    """The ingest_tally key of an event: its source and input partition."""
    return f"{INPUTS[ev.message.topic].id}:{ev.message.partition}"


def count_batch_in_tally(batch, outcomes: list[str]) -> None:
    """Add a micro-batch's outcomes to ingest_tally, writing each (source, partition) key once.

    ingest_tally is changelogged: every write is one changelog record (and one store
    write), so writing it per event cost a record per input event. Summing the batch per
    key in a plain dict first gives the same counts with at most one record per key per batch.
    """
    batch_tallies: dict[str, dict] = {}  # key -> its stored tally plus this batch's counts
    last_counted_event: dict[str, object] = {}  # key -> its batch event of the highest offset counted
    for ev, outcome in zip(batch, outcomes):
        key = tally_key(ev)
        tally = batch_tallies.get(key)
        if tally is None:
            # Before the read too: Faust reads a key from the current event's partition, and in
            # a micro-batch the stream's last event may be of another partition.
            write_tables_for(ev)
            tally = batch_tallies[key] = dict(ingest_tally[key])
        if ev.message.offset <= tally.get("last_offset", -1):
            continue  # already counted (before a restart, or earlier in this batch): redelivered, not new
        tally[outcome] = tally.get(outcome, 0) + 1
        tally["last_offset"] = ev.message.offset
        last_counted_event[key] = ev
    for key, ev in last_counted_event.items():  # keys with nothing new are not written
        write_tables_for(ev)  # the write goes to this key's partition, as the read did
        ingest_tally[key] = batch_tallies[key]


@app.timer(1.0)
@stops_worker_on_crash(app)
async def publish_tally() -> None:
    totals: dict[tuple[str, str], int] = {}
    for key, tally in ingest_tally.items():
        source = key.rsplit(":", 1)[0]
        for outcome in ("accepted", "dead_lettered", "duplicates"):
            totals[(source, outcome)] = totals.get((source, outcome), 0) + tally.get(outcome, 0)
    for (source, outcome), count in totals.items():
        metrics.INGEST_TALLY.labels(source, outcome).set(count)
