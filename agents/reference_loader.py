"""Reference loader: the registry and the intelligence lists, from their update topics into Valkey.

    norm_registry ──> ref:registry:<phone|account|cell|branch>:<identifier>
    norm_intel    ──> ref:intel:<kind>:<value>          (expiring at expires_at)

A delete removes the entry; an upsert already past its expires_at removes it too. The
newest event_time wins, so a late, older update changes nothing (streams.reference).
One pipeline per micro-batch; after it, every process's enrich cache drops the keys, so
the next event enriched sees the change.

The same pipeline raises `ref:applied` to the batch's highest offset per partition: enrich
waits on it before judging (the reference barrier, docs/enrichment.md). A new or changed
entry of an exact-match list is looked up in the contact index (`ref:contact:`); each signal
found there in the reach-back window (rules.yaml `reach_back`, streams.reference.reach_back_contacts)
goes back to correlation: a signal within a minute of the listing or after it (it crossed the
entry) straight to signals_recheck, an older one through intel_reach_back, paced by
agents/reach_back.py.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import msgspec
from prometheus_client import Counter

from streams import metrics
from streams.app import app, catalog, outbox, settings, sink_topic, source_topic, timed_batches
from streams.contracts import IntelUpdate, contract
from streams.contracts.alerts import IntelHit, IntelRecheck
from streams.dead_letters import undecodable
from streams.isolation import about_a_record, faust_dead_letters, isolated, stops_worker_on_crash
from streams.reference import Contact, epoch_ms, partition_id, process_store, reach_back_contacts, write_for
from streams.rules_versions import in_force
from streams.valkey import until_valkey_answers

log = logging.getLogger(__name__)

STAGE = "reference_loader"
SOURCES = {spec.name: spec for spec in map(catalog.topic, ("norm_intel", "norm_registry"))}
DECODERS = {name: msgspec.json.Decoder(contract(spec.contract)) for name, spec in SOURCES.items()}
DEAD_LETTERS = sink_topic("dead_letter")
RECHECKS = sink_topic("signals_recheck")
REACH_BACK = sink_topic("intel_reach_back")
ENCODER = msgspec.json.Encoder()
RECHECKS_SENT = Counter("antifraud_intel_rechecks_total",
                        "Signals handed back to correlate because an entry they touched was listed later, by list "
                        "and path: direct (the last minute), reach_back (paced)", ["list", "path"])
REACH_BACK_QUEUED = Counter("antifraud_reach_back_queued_total",
                            "Residents a newly listed entry reaches back to (queued on intel_reach_back), by list and "
                            "source", ["list", "source"])

UPDATES = Counter(
    "antifraud_reference_updates_total",
    "Registry and intelligence updates by list and outcome: upsert, delete, expired (removed on arrival), "
    "stale (older than the stored entry, ignored)",
    ["list", "outcome"],
)


def list_of(update) -> str:
    """The list an update belongs to, as a label: an intel kind, or an identifier kind of the registry."""
    return update.kind.value if isinstance(update, IntelUpdate) else update.identifier_kind.value


@app.agent(source_topic(*(spec.id for spec in SOURCES.values())), name="reference_loader")
@stops_worker_on_crash(app)
async def reference_loader(stream):
    store = process_store()
    send_dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)

    async def dead_letter(event, rejected) -> None:
        await send_dead_letter(event, rejected)
        # Handled, too: the barrier must not wait for a record that will never be applied.
        await until_valkey_answers(STAGE, settings, lambda: store.apply([], progress_of([event])))

    async for batch in timed_batches(stream, STAGE, settings.reference_batch_size, settings.enrich_batch_within_s,
                                     background=True):
        await isolated(STAGE, batch, lambda events: load_batch(events, store), dead_letter)


def progress_of(batch) -> dict[str, int]:
    """The highest offset of each partition in the batch: how far the loader has handled it once applied."""
    progress: dict[str, int] = {}
    for ev in batch:
        part = partition_id(ev.message.topic, ev.message.partition)
        progress[part] = max(progress.get(part, -1), ev.message.offset)
    return progress


def recheck_of(update: IntelUpdate, contact: Contact, reach_back: bool = False) -> IntelRecheck:
    return IntelRecheck(
        person_id=contact.person_id,
        event_id=contact.event_id,
        event_time=datetime.fromtimestamp(contact.event_time_ms / 1000, UTC),
        hit=IntelHit(kind=update.kind, matched_on=contact.matched_on, typology=update.typology,
                     confidence=update.confidence, source=update.source),
        listed_at=update.event_time,
        evidence=contact.evidence,
        reach_back=reach_back,
    )


async def load_batch(batch, store) -> None:
    now_ms = int(time.time() * 1000)
    rules = in_force().current.rules  # one version for the batch
    updates, writes = [], []
    for ev in batch:
        try:
            update = DECODERS[ev.message.topic].decode(ev.message.value).event
            write = write_for(update, now_ms)
        except Exception as exc:  # any bytes: a dead letter with its reason, never a stopped stage
            if not about_a_record(exc):
                raise
            log.error("%s: undecodable record at %s:%d:%d (%s)", STAGE, ev.message.topic, ev.message.partition,
                      ev.message.offset, type(exc).__name__)
            await DEAD_LETTERS.send(key=STAGE.encode(), value=ENCODER.encode(undecodable(STAGE, ev.message, exc, settings.max_event_bytes)))
            continue
        updates.append((ev, update))
        writes.append(write)
    applied, contacts = await until_valkey_answers(STAGE, settings, lambda: store.apply(writes, progress_of(batch)))
    out = outbox()
    for (ev, update), write, done, touched in zip(updates, writes, applied, contacts):
        UPDATES.labels(list_of(update), write.outcome if done else "stale").inc()
        metrics.STAGE_LATENCY.labels(STAGE).observe(max(0.0, time.time() - ev.message.timestamp))
        if not touched:
            continue
        # A late entry: correlate re-checks these signals (it skips what already carried the entry).
        at_once, paced = reach_back_contacts(touched, epoch_ms(update.event_time), now_ms,
                                             rules.reach_back.window_s, rules.reach_back.fresh_listing_s)
        for contact in at_once:
            out.add(RECHECKS, contact.person_id.encode(), ENCODER.encode(recheck_of(update, contact)))
        for contact in paced:
            out.add(REACH_BACK, contact.person_id.encode(), ENCODER.encode(recheck_of(update, contact, True)))
        RECHECKS_SENT.labels(list_of(update), "direct").inc(len(at_once))
        RECHECKS_SENT.labels(list_of(update), "reach_back").inc(len(paced))
        REACH_BACK_QUEUED.labels(list_of(update), update.source).inc(len(paced))
    await out.send()
