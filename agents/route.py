"""Route: every alert to the dissuasion channels its tier calls for (规范劝阻流程).

    alerts ──plan (routing.yaml)──> actions_<channel>          (Action, keyed by person)
                                └──> actions_line_suspension    (signed CarrierRequest, keyed by phone)

A new alert gets its tier's actions; a tier rise (version > 1) adds only the higher
tier's. Stateless: planning is a pure function of the alert (streams.dissuasion), so a
replay sends the same action ids, and a Valkey slot per alert, tier and channel keeps an
escalation and an upgrade from contacting the person twice on the same channel.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import msgspec

from streams import metrics
from streams.app import app, settings, sink_topic, source_topic
from streams.contracts.alerts import Alert
from streams.dead_letters import undecodable
from streams.dispatch import PARTNERS, claim_slots, send_action
from streams.dissuasion import BAD_RECORDS, plan_for_alert
from streams.isolation import about_a_record, faust_dead_letters, isolated, stops_worker_on_crash
from streams.rules_versions import RuleSet, in_force
from streams.valkey import async_client

log = logging.getLogger(__name__)

STAGE = "route"
DECODE_ALERT = msgspec.json.Decoder(Alert).decode
ENCODE = msgspec.json.Encoder().encode
DEAD_LETTERS = sink_topic("dead_letter")


@app.agent(source_topic("alerts"), name="route")
@stops_worker_on_crash(app)
async def route(stream):
    valkey = async_client(settings)
    dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)
    async for event in stream.events():
        started = time.perf_counter()
        rule_set = in_force().current  # one version for the event
        await isolated(STAGE, [event], lambda events, rule_set=rule_set: route_alert(events[0].message, valkey, rule_set),
                       dead_letter)
        metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - started)


async def route_alert(message, valkey, rule_set: RuleSet) -> None:
    """One alert by one rules version's routing, taken by the caller for this event."""
    try:
        alert = DECODE_ALERT(message.value)
    except Exception as exc:
        if not about_a_record(exc):
            raise
        # The alerts topic is written by the platform itself: this is a bug upstream, not a partner's typo.
        BAD_RECORDS.labels("alerts").inc()
        log.error("route: unreadable alert at %s:%d:%d dead-lettered (%s)", message.topic, message.partition,
                  message.offset, type(exc).__name__)
        await DEAD_LETTERS.send(key=STAGE.encode(), value=ENCODE(undecodable(STAGE, message, exc, settings.max_event_bytes)))
        return
    _tier, planned = plan_for_alert(alert, rule_set.routing, PARTNERS)
    owners = await claim_slots(STAGE, valkey, planned, rule_set)
    now = datetime.now(UTC)
    for p in planned:
        if owners.get(p.slot) != p.action.action_id:
            log.info("route: %s for alert %s already sent by %s", p.slot, alert.alert_id, owners.get(p.slot))
            continue
        await send_action(STAGE, valkey, p.action, message.partition, now, rule_set)
    metrics.STAGE_LATENCY.labels(STAGE).observe(max(0.0, time.time() - message.timestamp))
