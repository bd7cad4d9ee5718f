"""Carrying out what route and escalate decide: actions, signed partner requests, escalation records.

Slots keep one send per alert, tier and channel across both agents: a claim in Valkey
whose owner is the action id (streams.dedup), so a replay of the same action claims it
again and is sent with the same id, while a different action for the slot is not sent.
Every partner request is remembered in Valkey (request id -> person, alert, partition)
before it leaves, so a partner's ack, which carries nothing but the request id, can be
brought back to the person's alert_state.
"""

from __future__ import annotations

import logging
from datetime import datetime

import msgspec
import redis.asyncio as aioredis

from streams.alert_state import BankOrder
from streams.app import catalog, settings, sink_topic
from streams.contracts.actions import Action, Channel
from streams.contracts.dissuasion import Escalation
from streams.dedup import Claim
from streams.dissuasion import (
    ACTIONS,
    BANK_REQUESTS,
    CARRIER_REQUESTS,
    DUTY_DESK_VISITS,
    ESCALATIONS,
    Planned,
    bank_request,
    carrier_request,
)
from streams.routing import PartnerKeys, bank_topic_id, get_partners
from streams.rules_versions import RuleSet
from streams.valkey import until_valkey_answers

log = logging.getLogger(__name__)

ENCODE = msgspec.json.Encoder().encode
REQUEST_TTL_S = 14 * 86400  # longer than any request lives (48 h, renewals included)
PARTNERS = get_partners(settings)
KEYS = PartnerKeys(PARTNERS, settings)  # fails the worker's start when ANTIFRAUD_PARTNER_KEYS=env lacks a key

ACTION_TOPICS = {ch: sink_topic(f"actions_{ch.value}") for ch in Channel}
BANK_TOPICS = {code: sink_topic(bank_topic_id(code)) for code in PARTNERS.banks}
ESCALATION_TOPIC = sink_topic("escalations")
INBOX = sink_topic("escalation_inbox")
PERSON_PARTITIONS = catalog.topic("alerts").partitions


async def claim_slots(stage: str, valkey: aioredis.Redis, planned: list[Planned], rule_set: RuleSet) -> dict[str, str]:
    """slot -> the action id that holds it (ours, or the one another agent sent first)."""
    claims = [Claim(f"slot:{p.slot}", p.action.action_id) for p in planned if p.slot is not None]
    if not claims:
        return {}

    async def claim() -> list:
        pipe = valkey.pipeline(transaction=False)
        for c in claims:
            pipe.set(c.key, c.owner, nx=True, ex=int(rule_set.routing.escalation.alert_expiry_s) + 86400, get=True)
        return await pipe.execute()

    previous = await until_valkey_answers(stage, settings, claim)
    return {c.key[len("slot:"):]: (old.decode() if old is not None else c.owner) for c, old in zip(claims, previous)}


async def remember_request(stage: str, valkey: aioredis.Redis, request_id: str, person_id: str, alert_id: str,
                           partition: int) -> None:
    value = ENCODE({"person_id": person_id, "alert_id": alert_id, "partition": partition})
    await until_valkey_answers(stage, settings, lambda: valkey.set(f"partner-request:{request_id}", value, ex=REQUEST_TTL_S))


async def recall_request(stage: str, valkey: aioredis.Redis, request_id: str) -> dict | None:
    raw = await until_valkey_answers(stage, settings, lambda: valkey.get(f"partner-request:{request_id}"))
    return msgspec.json.decode(raw) if raw else None


async def send_action(stage: str, valkey: aioredis.Redis, action: Action, partition: int, now: datetime,
                      rule_set: RuleSet) -> None:
    """An action to its channel, stamped with the rules version that planned it; a line suspension as a
    signed CarrierRequest."""
    action.rules_version = rule_set.version
    ACTIONS.labels(action.channel.value, str(action.priority)).inc()
    if action.target.station_reason:
        # Each one is a person the registry could not place: the count shows where it has gaps.
        DUTY_DESK_VISITS.labels(action.target.station).inc()
        log.info("%s: visit %s for alert %s to duty desk %s (%s)", stage, action.action_id, action.alert_id,
                 action.target.station, action.target.station_reason)
    if action.channel is not Channel.line_suspension:
        await ACTION_TOPICS[action.channel].send(key=action.person_id.encode(), value=ENCODE(action))
        return
    request = carrier_request(action, action.alert_id, KEYS, now, rule_set.routing)
    await remember_request(stage, valkey, request.request_id, action.person_id, action.alert_id, partition)
    await ACTION_TOPICS[Channel.line_suspension].send(key=request.phone.encode(), value=ENCODE(request))
    CARRIER_REQUESTS.labels(request.carrier, "sent").inc()


async def send_bank_order(stage: str, valkey: aioredis.Redis, order: BankOrder, person_id: str, partition: int,
                          now: datetime, rule_set: RuleSet) -> None:
    request = bank_request(order.request_id, order.alert_id, order.bank, order.account, order.kind, order.reason,
                           now, order.expires_at, KEYS, rule_set.routing)
    await remember_request(stage, valkey, request.request_id, person_id, order.alert_id, partition)
    await BANK_TOPICS[order.bank].send(key=order.account.encode(), value=ENCODE(request))
    BANK_REQUESTS.labels(order.bank, f"{order.kind.value}_sent").inc()


async def publish_escalation(escalation: Escalation) -> None:
    ESCALATIONS.labels(escalation.reason.value).inc()
    await ESCALATION_TOPIC.send(key=escalation.person_id.encode(), value=ENCODE(escalation))
