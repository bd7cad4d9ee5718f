"""Escalate: feedback in, escalation out, until every alert is closed (劝阻反馈与升级).

    alerts, outcomes, signals_enriched (transfers), escalation_inbox
        ──alert_state (per person)──> actions_<channel>, actions_line_suspension
                                      bank_requests_<bank>   (only the bank that holds the account)
                                      escalations

The four sources are keyed by person id with the same partition count, so one person's
alerts, outcomes and transfers meet their alert_state in one partition. What arrives
elsewhere comes in through the inbox, sent to the partition that holds the state:
partner acks (keyed by request id, brought back via Valkey), timer findings (deadlines,
expiries, renewals), and outcomes a producer keyed with a different partitioner.
The rules are pure (streams.escalation); this module reads, carries out, then writes.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import msgspec

from streams import metrics
from streams.alert_state import DueIndex, Effects, PersonState
from streams.app import app, catalog, settings, sink_topic, source_topic, table, write_tables_for
from streams.contracts.actions import Outcome
from streams.contracts.alerts import Alert, EnrichedSignal
from streams.contracts.dissuasion import (
    BankAck,
    CarrierAck,
    EscalationInbox,
    ForwardedOutcome,
    PartnerAckForPerson,
    TimerDue,
)
from streams.dead_letters import undecodable
from streams.dispatch import (
    INBOX,
    KEYS,
    PARTNERS,
    PERSON_PARTITIONS,
    claim_slots,
    publish_escalation,
    recall_request,
    send_action,
    send_bank_order,
)
from streams.dissuasion import (
    ALERTS_CLOSED,
    BAD_RECORDS,
    BANK_REQUESTS,
    CARRIER_REQUESTS,
    CLOSED_ALERTS,
    DISSUADED_ALERTS,
    FINAL_OUTCOME,
    FIRST_CONTACT,
    FORWARDED,
    SLA_BREACHES,
    person_partition,
)
from streams.escalation import Rules
from streams.isolation import about_a_record, faust_dead_letters, isolated, stops_worker_on_crash
from streams.rules_versions import RuleSet, in_force
from streams.signing import verify
from streams.valkey import async_client

log = logging.getLogger(__name__)

STAGE = "escalate"
ENCODE = msgspec.json.Encoder().encode
DECODERS = {
    "alerts": msgspec.json.Decoder(Alert).decode,
    "outcomes": msgspec.json.Decoder(Outcome).decode,
    "signals_enriched": msgspec.json.Decoder(EnrichedSignal).decode,
    "escalation_inbox": msgspec.json.Decoder(EscalationInbox).decode,
}
TOPIC_IDS = {catalog.topic(t).name: t for t in (*DECODERS, "bank_acks", "carrier_acks")}
DEAD_LETTERS = sink_topic("dead_letter")
TIMER_RESEND_S = 30.0  # a finding not yet settled by the agent is sent again after this long

alert_state = table("alert_state", default=None)


def now_utc() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------ the agent
@app.agent(source_topic(*DECODERS), name="escalate")
@stops_worker_on_crash(app)
async def escalate(stream):
    valkey = async_client(settings)
    dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)
    async for event in stream.events():
        rule_set = in_force().current  # one version for the event
        await isolated(STAGE, [event], lambda events, rule_set=rule_set: escalate_one(events[0], valkey, rule_set), dead_letter)


def escalation_rules(rule_set: RuleSet) -> Rules:
    """The escalation rules of one version (a plain holder of its routing: cheap to make per event)."""
    return Rules(rule_set.routing, PARTNERS)


async def escalate_one(event, valkey, rule_set: RuleSet) -> None:
    started = time.perf_counter()
    write_tables_for(event)
    message = event.message
    topic_id = TOPIC_IDS[message.topic]
    if topic_id == "signals_enriched" and b'"transfer_out"' not in (message.value or b""):
        return  # only transfers out matter here; skip decoding the rest of the signal stream
    try:
        record = DECODERS[topic_id](message.value)
    except Exception as exc:  # outcomes come from channel workers and partners' code: any bytes
        if not about_a_record(exc):
            raise
        BAD_RECORDS.labels(topic_id).inc()
        log.error("escalate: unreadable record at %s:%d:%d dead-lettered (%s)", message.topic, message.partition,
                  message.offset, type(exc).__name__)
        await DEAD_LETTERS.send(key=STAGE.encode(), value=ENCODE(undecodable(STAGE, message, exc, settings.max_event_bytes)))
        return
    await handle(record, message.partition, valkey, rule_set)
    metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - started)


async def handle(record, partition: int, valkey, rule_set: RuleSet) -> None:
    rules = escalation_rules(rule_set)
    if isinstance(record, ForwardedOutcome):
        record = record.outcome
    person_id = record.person_id
    stored = alert_state.get(person_id)
    state = msgspec.convert(stored, PersonState) if stored is not None else None
    now = now_utc()
    if isinstance(record, Alert):
        state = state or PersonState(partition=partition)
        effects = rules.on_alert(state, record)
    elif state is None:
        await _without_state(record, partition, None, rules)
        return
    elif isinstance(record, Outcome):
        effects = rules.on_outcome(state, record, now)
        if effects is None:
            await _without_state(record, partition, state, rules)
            return
    elif isinstance(record, EnrichedSignal):
        effects = rules.on_transfer(state, record, now)
    elif isinstance(record, TimerDue):
        effects = rules.on_due(state, record, now)
    elif record.bank_ack is not None:
        effects = rules.on_bank_ack(state, record.alert_id, record.bank_ack, now)
    else:
        effects = rules.on_carrier_ack(state, record.alert_id, record.carrier_ack, now)
    await carry_out(state, effects, valkey, now, rule_set)
    if effects.forget:
        del alert_state[person_id]
        DUE.drop(person_id)
        return
    updated = msgspec.to_builtins(state)
    if updated != stored:
        alert_state[person_id] = updated
        _index(person_id, state, rules)


async def _without_state(record, partition: int, state: PersonState | None, rules: Rules) -> None:
    """A record whose alert this partition does not hold (yet)."""
    if isinstance(record, Outcome):
        if partition != person_partition(record.person_id, PERSON_PARTITIONS):
            # Keyed by another partitioner than the platform's (librdkafka's default is CRC32, not
            # murmur2): the alert is in another partition. Send it on, never drop it.
            FORWARDED.inc()
            await INBOX.send(key=record.person_id.encode(), value=ENCODE(ForwardedOutcome(record)),
                             partition=person_partition(record.person_id, PERSON_PARTITIONS))
            return
        # Read before its alert (alerts and outcomes are read side by side): kept until the alert comes.
        state = state or PersonState(partition=partition)
        rules.hold(state, record)
        alert_state[record.person_id] = msgspec.to_builtins(state)
        _index(record.person_id, state, rules)
    elif isinstance(record, PartnerAckForPerson):
        BAD_RECORDS.labels("no_alert_state").inc()
        log.warning("escalate: ack for alert %s whose state is gone; kept in the log only", record.alert_id)
    # A transfer with no alert open, or a timer finding already settled: nothing to do.


async def carry_out(state: PersonState, effects: Effects, valkey, now: datetime, rule_set: RuleSet) -> None:
    """Send first, write the state after: a crash in between repeats the same ids, never loses one."""
    owners = await claim_slots(STAGE, valkey, [p for p in effects.actions if p.slot is not None], rule_set)
    for planned in effects.actions:
        case = state.alerts[planned.action.alert_id]
        owner = owners.get(planned.slot, planned.action.action_id) if planned.slot else planned.action.action_id
        if owner != planned.action.action_id:
            escalation_rules(rule_set).adopt(case, planned, owner)  # route sent this slot first, for an upgrade
            continue
        await send_action(STAGE, valkey, planned.action, state.partition, now, rule_set)
    for order in effects.bank:
        person_id = state.alerts[order.alert_id].alert.person_id
        await send_bank_order(STAGE, valkey, order, person_id, state.partition, now, rule_set)
    for _bank in effects.unroutable_banks:
        BANK_REQUESTS.labels("unlisted", "unroutable").inc()  # a bank code banks.yaml lacks: not a label value
    for escalation in effects.escalations:
        await publish_escalation(escalation)
    for tier in effects.breaches:
        SLA_BREACHES.labels(tier.value).inc()
    for seconds in effects.first_contact_s:
        FIRST_CONTACT.observe(seconds)
    for closure in effects.closures:
        ALERTS_CLOSED.labels(closure.result).inc()
        if closure.seconds is not None:
            FINAL_OUTCOME.observe(closure.seconds)
    for partner, status in effects.acks:
        (BANK_REQUESTS if partner in PARTNERS.banks else CARRIER_REQUESTS).labels(partner, status).inc()


# ------------------------------------------------------------------- partner acks, re-keyed
@app.agent(source_topic("bank_acks", "carrier_acks"), name="partner_acks")
@stops_worker_on_crash(app)
async def partner_acks(stream):
    """Verify each ack with its partner's key, find the person it concerns, send it to their partition."""
    valkey = async_client(settings)
    dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)
    async for event in stream.events():
        await isolated(STAGE, [event], lambda events: partner_ack(events[0].message, valkey), dead_letter)


async def partner_ack(message, valkey) -> None:
    is_bank = TOPIC_IDS[message.topic] == "bank_acks"
    ack = _verified_ack(message.value, is_bank)
    if ack is None:
        BAD_RECORDS.labels(TOPIC_IDS[message.topic]).inc()
        log.warning("escalate: unverifiable ack at %s:%d:%d dropped", message.topic, message.partition, message.offset)
        return
    where = await recall_request(STAGE, valkey, ack.request_id)
    if where is None:
        BAD_RECORDS.labels("unknown_request").inc()
        log.warning("escalate: ack for unknown request %s", ack.request_id)
        return
    item = PartnerAckForPerson(where["person_id"], where["alert_id"], **{"bank_ack" if is_bank else "carrier_ack": ack})
    await INBOX.send(key=where["person_id"].encode(), value=ENCODE(item), partition=where["partition"])


def _verified_ack(value: bytes | None, is_bank: bool) -> BankAck | CarrierAck | None:
    """The ack if it decodes and its partner's signature holds; None for any other bytes."""
    try:
        raw = json.loads(value or b"")
        ack = msgspec.convert(raw, BankAck if is_bank else CarrierAck)
    except (ValueError, TypeError, RecursionError, msgspec.ValidationError):  # not UTF-8, not JSON, too deep
        return None
    key = KEYS.banks.get(ack.bank) if is_bank else KEYS.carriers.get(ack.carrier)
    return ack if key is not None and verify(raw, key) else None


# ---------------------------------------------------------------------------------- timer
_sent_findings: dict[tuple, float] = {}

# Who of this worker's alert_state can be due from when, and the success-ratio tallies: kept where the
# agent writes the state (_index, DUE.drop) so that a tick visits only the persons due, not every state.
DUE = DueIndex()
_due_built_after: int | None = None  # the app.rebalancing_count the index was last built after; None: build it


def _index(person_id: str, state: PersonState, rules: Rules) -> None:
    """Call right after writing the person's state to alert_state, with no await in between."""
    DUE.put(person_id, state, rules.next_due(state))


def _build_index(rules: Rules) -> None:
    """From a full scan of the table: what a restarted worker or a rebalance brings in never passed _index."""
    DUE.clear()
    for person_id, stored in list(alert_state.items()):
        _index(person_id, msgspec.convert(stored, PersonState), rules)


# The tick's interval is the version in force when the worker starts (it follows the topic before the
# stages are imported); a new interval takes a restart, every other rule switches at the next tick.
@app.timer(in_force().current.routing.escalation.timer_interval_s)
@stops_worker_on_crash(app)
async def find_due() -> None:
    """Deadlines, expiries, renewals and forgettable states, by wall clock (event time plays no part)."""
    global _due_built_after
    now, clock = now_utc(), time.monotonic()
    rules = escalation_rules(in_force().current)  # one version for the tick
    # When to rebuild the index: Faust counts every rebalance in app.rebalancing_count and holds
    # app.rebalancing from its first moment (set synchronously in the consumer's revoke callback) until
    # the table's changelog recovery has completed. The on_partitions_assigned signal comes before that
    # recovery (an index built then would miss what is still being recovered), and comparing assigned
    # partitions between ticks misses partitions revoked and given back meanwhile, whose state another
    # worker may have changed. So: a full scan on the first tick, on every tick while a rebalance is
    # under way (as every tick scanned before the index), and once more after it ends. The scan has no
    # await: neither a rebalance nor the agent can change the table halfway through it.
    if _due_built_after != app.rebalancing_count or app.rebalancing:
        _build_index(rules)
        _due_built_after = None if app.rebalancing else app.rebalancing_count
        if _due_built_after is not None:
            log.info("escalate: timer index built: %d persons with state in this worker's partitions", len(DUE))
    findings = []
    for person_id in DUE.due(now):
        stored = alert_state.get(person_id)
        if stored is None:  # deleted where the index did not hear of it: nothing left to find
            DUE.drop(person_id)
            continue
        state = msgspec.convert(stored, PersonState)
        found = rules.due(person_id, state, now)
        if not found:  # the index was behind the table (it never should be): correct it
            _index(person_id, state, rules)
        findings += [(state.partition, due) for due in found]
    # The success-rate counts from the tallies the index keeps as cases close, re-open and are
    # forgotten, rebuilt with it: exact at every tick, as the full scan was, without reading any state.
    CLOSED_ALERTS.set(DUE.closed)
    DISSUADED_ALERTS.set(DUE.dissuaded)
    for key in [k for k, at in _sent_findings.items() if clock - at > TIMER_RESEND_S]:
        del _sent_findings[key]
    for partition, due in findings:
        key = (due.person_id, due.alert_id, due.due, due.ref)
        if key in _sent_findings:
            continue
        _sent_findings[key] = clock
        await INBOX.send(key=due.person_id.encode(), value=ENCODE(due), partition=partition)
