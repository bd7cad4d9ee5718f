"""`antifraud dead-letters list|replay`: see what was refused, and send it again once the cause is fixed.

A replay sends a dead letter's original bytes and key to its source input topic, on its
source partition, with the header `antifraud-replay-of: <dead_letter_id>`. Ingest judges
it like any record. A replayed record that is still bad is dead-lettered again (same
reason, new source offset) and keeps that header, so it comes back once and no loop
starts:

- `replay` never picks a dead letter that carries the header (a replay that came back:
  its cause is not fixed) nor the original it came back for, unless `--force`;
- `replay` remembers in Valkey which dead letters it sent (for the dead-letter topic's
  retention), so a second `replay` does not send them again, unless `--force`;
- a dead letter whose original was cut (`original_truncated`, an oversized record) is
  never replayed: its bytes are not the record.

Dedup is not in the way: ingest claims an event id only for an accepted record, so a
record refused before was never a first sighting.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streams.catalog import Catalog, get_catalog
from streams.contracts import DeadLetter
from streams.kafka import consumer_config, end_offsets, producer_config
from streams.masking import mask, mask_text
from streams.settings import Settings
from streams.valkey import sync_client

log = logging.getLogger(__name__)

REPLAY_HEADER = "antifraud-replay-of"
REPLAYED_KEY = "dead-letters:replayed:"  # + dead_letter_id: when it was replayed
_DECODE = msgspec.json.Decoder(DeadLetter).decode


def replay_of(headers) -> str | None:
    """The dead-letter id a record replays (its `antifraud-replay-of` header), or None."""
    for name, value in (headers.items() if isinstance(headers, dict) else headers or ()):
        if name == REPLAY_HEADER and value:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


@dataclass(frozen=True, slots=True)
class Letter:
    record: DeadLetter
    replay_of: str | None  # set on a replay that was refused again


@dataclass(frozen=True, slots=True)
class Filters:
    reason: str | None = None
    source: str | None = None  # a topic id (in_bank) or name (antifraud.in.bank)
    stage: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def match(self, letter: Letter, catalog: Catalog) -> bool:
        r = letter.record
        return ((self.reason is None or r.reason.value == self.reason)
                and (self.stage is None or r.stage == self.stage)
                and (self.source is None or self.source in (r.source_topic, topic_id(catalog, r.source_topic)))
                and (self.since is None or r.received_at >= self.since)
                and (self.until is None or r.received_at < self.until))


def topic_id(catalog: Catalog, name: str) -> str | None:
    return next((t.id for t in catalog.topics.values() if t.name == name), None)


def read_dead_letters(settings: Settings, catalog: Catalog | None = None) -> list[Letter]:
    """Every dead letter the topic holds now, oldest first (up to the end offsets asked at the start)."""
    catalog = catalog or get_catalog(settings.topics_file)
    spec = catalog.of_kind("dead-letter")[0]
    partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    ends = end_offsets(settings.kafka_bootstrap_servers, partitions)
    consumer = Consumer(consumer_config(settings, "antifraud-dead-letters"))
    consumer.assign([TopicPartition(spec.name, p, 0) for p in range(spec.partitions)])  # no group join, no commit
    letters: list[Letter] = []
    positions = {p: 0 for p in range(spec.partitions)}
    try:
        while any(positions[p] < ends[(spec.name, p)] for p in positions):
            msg = consumer.poll(5.0)
            if msg is None:
                raise TimeoutError(f"{spec.name}: no record within 5 s before its end offsets {ends}")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"{spec.name}: {msg.error()}")
            positions[msg.partition()] = msg.offset() + 1
            try:
                letters.append(Letter(_DECODE(msg.value()), replay_of(msg.headers())))
            except msgspec.DecodeError:  # not written by the platform: shown nowhere, replayed never
                log.warning("%s:%d:%d is not a DeadLetter: skipped", spec.name, msg.partition(), msg.offset())
    finally:
        consumer.close()
    return letters


# ------------------------------------------------------------------------------ list
def masked_preview(letter: DeadLetter, limit: int = 160) -> str:
    """The original's shape for a person: field names kept, every value masked (never a phone or account)."""
    raw = base64.b64decode(letter.original_b64)
    for encoding in ("utf-8", "gb18030"):
        try:
            value = json.loads(raw.decode(encoding))
            break
        except (UnicodeDecodeError, ValueError, RecursionError):
            value = None
    if isinstance(value, dict):
        text = json.dumps({k: mask(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                           for k, v in value.items()}, ensure_ascii=False)
    else:
        text = mask_text(raw.decode("utf-8", errors="replace"))
    return text if len(text) <= limit else text[:limit] + "…"


def summary(letters: list[Letter], replayed: set[str]) -> list[tuple[str, str, str, int, int, int, int]]:
    """(source topic, stage, reason, count, replayed, came back, truncated), by count."""
    came_back_for = {letter.replay_of for letter in letters if letter.replay_of}
    rows: dict[tuple[str, str, str], Counter] = {}
    for letter in letters:
        r = letter.record
        counts = rows.setdefault((r.source_topic, r.stage, r.reason.value), Counter())
        counts["count"] += 1
        counts["replayed"] += r.dead_letter_id in replayed or r.dead_letter_id in came_back_for
        counts["came back"] += letter.replay_of is not None
        counts["truncated"] += r.original_truncated
    ordered = sorted(rows.items(), key=lambda item: -item[1]["count"])
    return [(*key, c["count"], c["replayed"], c["came back"], c["truncated"]) for key, c in ordered]


def replayed_ids(settings: Settings, ids: list[str]) -> set[str]:
    """Which of `ids` a replay has sent before (Valkey keeps it for the dead-letter retention)."""
    if not ids:
        return set()
    client = sync_client(settings)
    try:
        found = client.mget([REPLAYED_KEY + i for i in ids])
    finally:
        client.close()
    return {i for i, value in zip(ids, found) if value is not None}


# ------------------------------------------------------------------------------ replay
@dataclass
class Plan:
    send: list[Letter]
    skipped: Counter  # why -> count


def plan_replay(letters: list[Letter], replayed: set[str], catalog: Catalog, force: bool = False) -> Plan:
    """Which of the (already filtered) dead letters to send, and why the others are not sent."""
    inputs = {t.name for t in catalog.of_kind("input")}
    came_back_for = {letter.replay_of for letter in letters if letter.replay_of}
    plan = Plan([], Counter())
    for letter in letters:
        r = letter.record
        if r.original_truncated:
            plan.skipped["truncated (oversized: the bytes kept are not the record)"] += 1
        elif r.source_topic not in inputs:
            plan.skipped["not from an input topic"] += 1
        elif not force and letter.replay_of is not None:
            plan.skipped["a replay refused again (cause not fixed; --force to send)"] += 1
        elif not force and (r.dead_letter_id in replayed or r.dead_letter_id in came_back_for):
            plan.skipped["replayed before (--force to send again)"] += 1
        else:
            plan.send.append(letter)
    return plan


def send_replays(settings: Settings, letters: list[Letter], retention_s: int) -> int:
    """Each letter's original bytes and key to its source topic and partition; returns how many were written."""
    producer = Producer(producer_config(settings))
    failed: list[str] = []

    def delivered(err, msg, letter_id: str) -> None:
        if err is not None:
            failed.append(letter_id)
            log.error("replay of %s not delivered: %s", letter_id, err)

    for letter in letters:
        r = letter.record
        producer.produce(
            r.source_topic, base64.b64decode(r.original_b64),
            key=base64.b64decode(r.key_b64) if r.key_b64 else None,
            partition=r.source_partition,  # where it came from: in order with that person's other records
            headers=[(REPLAY_HEADER, r.dead_letter_id.encode())],
            on_delivery=lambda err, msg, i=r.dead_letter_id: delivered(err, msg, i),
        )
        producer.poll(0)
    if producer.flush(30):
        raise TimeoutError("replayed records not all delivered in 30 s")
    sent = [letter.record.dead_letter_id for letter in letters if letter.record.dead_letter_id not in failed]
    if sent:  # remembered after delivery: a failed run is simply run again
        client = sync_client(settings)
        try:
            pipe = client.pipeline(transaction=False)
            now = datetime.now(UTC).isoformat()
            for letter_id in sent:
                pipe.set(REPLAYED_KEY + letter_id, now, ex=retention_s)
            pipe.execute()
        finally:
            client.close()
    return len(sent)


def dead_letter_retention_s(catalog: Catalog) -> int:
    spec = catalog.of_kind("dead-letter")[0]
    ms = spec.retention_ms if spec.retention_ms is not None else catalog.defaults.retention_ms
    return max(1, int(ms // 1000)) if ms and ms > 0 else 30 * 86400


# ------------------------------------------------------------------------------ the commands
def parse_time(text: str | None) -> datetime | None:
    """ISO 8601; a time without zone is UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_command(settings: Settings, filters: Filters, examples: int, echo=print) -> None:
    catalog = get_catalog(settings.topics_file)
    letters = [letter for letter in read_dead_letters(settings, catalog) if filters.match(letter, catalog)]
    replayed = replayed_ids(settings, [letter.record.dead_letter_id for letter in letters])
    echo(f"{len(letters):,} dead letters" + (" (filtered)" if filters != Filters() else ""))
    header = ("source topic", "stage", "reason", "count", "replayed", "came back", "truncated")
    echo("{:<28} {:<18} {:<18} {:>8} {:>9} {:>10} {:>10}".format(*header))
    for row in summary(letters, replayed):
        echo("{:<28} {:<18} {:<18} {:>8,} {:>9,} {:>10,} {:>10,}".format(*row))
    for letter in letters[-examples:] if examples > 0 else []:
        r = letter.record
        echo(f"\n{r.dead_letter_id}  {r.received_at.isoformat(timespec='seconds')}  {r.stage}  {r.reason.value}"
             + (f"  (replay of {letter.replay_of})" if letter.replay_of else "")
             + f"\n  {mask_text(r.detail)}\n  {r.original_size:,} bytes: {masked_preview(r)}")


def replay_command(settings: Settings, filters: Filters, dry_run: bool, force: bool, echo=print) -> int:
    """Returns how many records were sent (0 on a dry run)."""
    catalog = get_catalog(settings.topics_file)
    letters = [letter for letter in read_dead_letters(settings, catalog) if filters.match(letter, catalog)]
    replayed = replayed_ids(settings, [letter.record.dead_letter_id for letter in letters])
    plan = plan_replay(letters, replayed, catalog, force)
    by_source = Counter(letter.record.source_topic for letter in plan.send)
    echo(f"{len(letters):,} dead letters match; {'would send' if dry_run else 'sending'} {len(plan.send):,}"
         + "".join(f"\n  {topic}: {n:,}" for topic, n in sorted(by_source.items())))
    for why, n in sorted(plan.skipped.items()):
        echo(f"  not sent, {why}: {n:,}")
    if dry_run or not plan.send:
        return 0
    sent = send_replays(settings, plan.send, dead_letter_retention_s(catalog))
    echo(f"sent {sent:,} of {len(plan.send):,}")
    log.info("dead letters replayed: %d of %d (filters %s)", sent, len(plan.send), filters)
    return sent
