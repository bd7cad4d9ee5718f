"""Enrich: every normalized signal resolved to a person, a jurisdiction and counterpart intelligence.

    norm_telecom / norm_bank / norm_app_report ──(registry + intel in Valkey)──> signals_enriched
                                                                     keyed by person id

The resident is the subscriber (telecom), the account, else the holder's phone (bank),
or the reporter (app). An unregistered resident gets a person id derived from their
phone (else the account), and a jurisdiction from the serving cell or the bank branch.
One batched lookup per micro-batch (streams.reference), and one record batch per partition
out (streams.outbox); while Valkey is unreachable the batch waits and its offsets hold:
no event is dropped or sent on unenriched.

Reference before judgement (docs/enrichment.md): before a batch is looked up, the reference
barrier waits (bounded) until the loader has applied everything on the normalized reference
topics; after it, the exact intel entries the batch's signals touched are registered in the
contact index (with what correlation needs of the signal, for the reach-back window) and read
again in one transaction, so an entry listed a moment or three days later reaches the signal
through the loader and correlate (late intelligence, docs/detection.md).
"""

from __future__ import annotations

import logging
import time

import msgspec
from prometheus_client import Counter, Gauge

from streams import metrics
from streams.app import app, catalog, live_first, outbox, settings, sink_topic, source_topic, timed_batches
from streams.contracts import AppReport, BankEvent, Ingested, TelecomEvent, contract
from streams.contracts.alerts import EnrichedSignal, Jurisdiction, Vulnerability
from streams.contracts.reference import AgeBand, IdentifierKind
from streams.dead_letters import undecodable
from streams.isolation import about_a_record, faust_dead_letters, isolated, stops_worker_on_crash
from streams.reference import (
    LookupRequest,
    LookupResult,
    ReferenceBarrier,
    account_probes,
    apk_probes,
    contacts_of,
    derived_person_id,
    number_probes,
    process_store,
    resolve,
    url_probes,
)
from streams.rules_versions import in_force
from streams.scoring import evidence_of, fact_of
from streams.valkey import until_valkey_answers

log = logging.getLogger(__name__)

STAGE = "enrich"
SOURCES = {spec.name: spec for spec in map(catalog.topic, ("norm_telecom", "norm_bank", "norm_app_report"))}
DECODERS = {name: msgspec.json.Decoder(contract(spec.contract)) for name, spec in SOURCES.items()}
SIGNALS = sink_topic("signals_enriched")
DEAD_LETTERS = sink_topic("dead_letter")
ENCODER = msgspec.json.Encoder()
ELDERLY = (AgeBand.age_60_69, AgeBand.age_70_plus)
UNKNOWN_PLACE = Jurisdiction(county="unknown", station="unknown", grid="unknown")

WAITING = Gauge("antifraud_events_waiting_enrichment", "Events taken into the enrich batch and not yet sent on")
ENRICHED = Counter(
    "antifraud_enriched_total", "Signals sent on enriched, by source and whether the resident is registered",
    ["source", "identity"],
)
INTEL_HITS = Counter("antifraud_intel_hits_total", "Counterpart intelligence found on signals, by list", ["kind"])


# ---------------------------------------------------------------- the pure part: one event
def lookup_request(event: TelecomEvent | BankEvent | AppReport) -> LookupRequest:
    """Which identifiers, location and counterpart fields of this event to look up."""
    if isinstance(event, TelecomEvent):
        probes = number_probes("counterpart", event.counterpart)
        for url in event.sms_urls:
            probes += url_probes("sms_url", url)
        return LookupRequest(((IdentifierKind.phone, event.subscriber),), (IdentifierKind.cell, event.cell_id),
                             tuple(probes))
    if isinstance(event, BankEvent):
        residents = ((IdentifierKind.account, event.account),)
        if event.holder_phone:
            residents += ((IdentifierKind.phone, event.holder_phone),)
        probes = account_probes("counterparty_account", event.counterparty_account) if event.counterparty_account else []
        return LookupRequest(residents, (IdentifierKind.branch, event.branch_code), tuple(probes))
    probes = []
    if event.counterpart:
        probes += number_probes("counterpart", event.counterpart)
    if event.url:
        probes += url_probes("url", event.url)
    if event.apk_sha256:
        probes += apk_probes("apk", event.apk_sha256)
    return LookupRequest(((IdentifierKind.phone, event.reporter_phone),), None, tuple(probes))


def resident_phone(event: TelecomEvent | BankEvent | AppReport) -> str | None:
    if isinstance(event, TelecomEvent):
        return event.subscriber
    if isinstance(event, BankEvent):
        return event.holder_phone
    return event.reporter_phone


def enriched_signal(envelope: Ingested, result: LookupResult) -> EnrichedSignal:
    event = envelope.event
    phone = resident_phone(event)
    if result.person is not None:
        p = result.person
        person_id, resolved = p.person_id, True
        place = Jurisdiction(county=p.county, station=p.station, grid=p.grid or "unknown")
        vulnerable = Vulnerability(age_band=p.age_band, elderly=p.age_band in ELDERLY, student=p.student)
    else:
        # The phone first: an unregistered resident's calls and transfers then share one id.
        person_id, resolved = derived_person_id(phone or event.account), False
        loc = result.location
        place = Jurisdiction(county=loc.county, station=loc.station, grid=loc.grid or "unknown") if loc else UNKNOWN_PLACE
        vulnerable = Vulnerability()
    return EnrichedSignal(
        event_id=event.event_id,
        event_time=event.event_time,
        ingested_at=envelope.ingested_at,
        person_id=person_id,
        identity_resolved=resolved,
        jurisdiction=place,
        vulnerability=vulnerable,
        phone=phone,
        intel=result.intel,
        telecom=event if isinstance(event, TelecomEvent) else None,
        bank=event if isinstance(event, BankEvent) else None,
        app=event if isinstance(event, AppReport) else None,
    )


# --------------------------------------------------------------------------------- the agent
@app.task
@stops_worker_on_crash(app)
async def follow_reference_invalidations() -> None:
    # Until this subscription is live the cache stays off: other processes' loaders must reach it.
    await process_store().follow_invalidations(settings.redis_url, settings.valkey_retry_max_s)


@app.agent(source_topic(*(spec.id for spec in SOURCES.values())), name="enrich")
@stops_worker_on_crash(app)
async def enrich(stream):
    store = process_store()
    barrier = ReferenceBarrier(store, settings.kafka_bootstrap_servers, REFERENCE_TOPICS,
                               settings.reference_barrier_timeout_s, settings.reference_barrier_max_backlog)
    dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)
    try:
        async for batch in timed_batches(stream, STAGE, settings.enrich_batch_size, settings.enrich_batch_within_s):
            await isolated(STAGE, batch, lambda events: enrich_batch(events, store, barrier), dead_letter)
    finally:
        await barrier.close()


REFERENCE_TOPICS = {spec.name: spec.partitions for spec in map(catalog.topic, ("norm_intel", "norm_registry"))}


async def enrich_batch(batch, store, barrier: ReferenceBarrier | None = None) -> None:
    WAITING.set(len(batch))
    out = outbox()
    decoded = []
    for ev in batch:
        try:
            envelope = DECODERS[ev.message.topic].decode(ev.message.value)
            decoded.append((ev, envelope, lookup_request(envelope.event)))
        except Exception as exc:  # any bytes: a dead letter with its reason, never a stopped stage
            if not about_a_record(exc):
                raise
            log.error("enrich: undecodable record at %s:%d:%d (%s)", ev.message.topic, ev.message.partition,
                      ev.message.offset, type(exc).__name__)
            out.add(DEAD_LETTERS, STAGE.encode(), ENCODER.encode(undecodable(STAGE, ev.message, exc, settings.max_event_bytes)))
    requests = [request for _, _, request in decoded]
    use_cache = True
    if barrier is not None and decoded:
        with live_first.needed():  # the loader is background work: it must not pause while this waits for it
            use_cache = await until_valkey_answers(STAGE, settings, barrier.wait)
    records = await until_valkey_answers(STAGE, settings, lambda: store.lookup_records(requests, STAGE, use_cache))
    now_ms = int(time.time() * 1000)
    signals = [enriched_signal(envelope, resolve(request, records, now_ms)) for _, envelope, request in decoded]
    contacts = [contact for (_, _, request), signal in zip(decoded, signals)
                for contact in contacts_of(request, signal.person_id, signal.event_id,
                                           int(signal.event_time.timestamp() * 1000),
                                           lambda signal=signal: evidence_of(fact_of(signal)))]
    # How long the contact index keeps a contact: the reach-back window of the version in force.
    reach_back_s = in_force().current.rules.reach_back.window_s
    fresh = await until_valkey_answers(STAGE, settings, lambda: store.register_contacts(contacts, reach_back_s))
    changed = {key for key, record in fresh.items() if record != records.get(key)}
    if changed:  # listed (or changed) between the lookup and the registration: judged with it
        records.update(fresh)
        signals = [enriched_signal(envelope, resolve(request, records, now_ms)) if changed.intersection(request.keys())
                   else signal for (_, envelope, request), signal in zip(decoded, signals)]
    for (ev, _, _), signal in zip(decoded, signals):
        out.add(SIGNALS, signal.person_id.encode(), ENCODER.encode(signal))
        source = SOURCES[ev.message.topic].id
        ENRICHED.labels(source, "resolved" if signal.identity_resolved else "unresolved").inc()
        for hit in signal.intel:
            INTEL_HITS.labels(hit.kind.value).inc()
        metrics.STAGE_LATENCY.labels(STAGE).observe(max(0.0, time.time() - ev.message.timestamp))
    await out.send()
    WAITING.set(0)
