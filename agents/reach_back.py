"""Reach-back: late intelligence over the contact window, paced behind the live path.

    intel_reach_back (keyed by person) ──(at most ANTIFRAUD_REACH_BACK_RATE per worker)──> signals_recheck

The reference loader puts here every resident who touched a newly listed entry in the 72 h
before (streams.reference.reach_back_contacts). A ministry list of 100,000 entries can reach
back to a million residents at once; forwarded unpaced they would queue in front of every live
signal at correlation, funds warnings included. So this stage hands them on at a bounded rate:
one at a time passes at once, a flood drains in minutes beside the live path, and its progress
is this topic's lag (console, `antifraud_reach_back_*` metrics). Records are passed on as they
came (validated, not re-encoded); undecodable ones are dead-lettered.
"""

from __future__ import annotations

import logging

import msgspec
from aiolimiter import AsyncLimiter
from prometheus_client import Counter

from streams.app import app, outbox, settings, sink_topic, source_topic, timed_batches
from streams.contracts.alerts import IntelRecheck
from streams.dead_letters import undecodable
from streams.isolation import about_a_record, faust_dead_letters, isolated, stops_worker_on_crash

log = logging.getLogger(__name__)

STAGE = "reach_back"
DECODER = msgspec.json.Decoder(IntelRecheck)
ENCODER = msgspec.json.Encoder()
RECHECKS = sink_topic("signals_recheck")
DEAD_LETTERS = sink_topic("dead_letter")
BATCH = 50  # small: a batch waits for its whole share of the rate before any of it is sent

FORWARDED = Counter("antifraud_reach_back_forwarded_total",
                    "Reach-back re-checks handed to correlation, by list and source", ["list", "source"])


@app.agent(source_topic("intel_reach_back"), name="reach_back")
@stops_worker_on_crash(app)
async def reach_back(stream):
    limiter = AsyncLimiter(settings.reach_back_rate, time_period=1.0)
    dead_letter = faust_dead_letters(STAGE, DEAD_LETTERS, settings.max_event_bytes)
    async for batch in timed_batches(stream, STAGE, BATCH, 0.05):
        await isolated(STAGE, batch, lambda events: forward(events, limiter), dead_letter)


async def forward(batch, limiter: AsyncLimiter) -> None:
    out = outbox()
    for ev in batch:
        try:
            recheck = DECODER.decode(ev.message.value)
        except Exception as exc:  # any bytes: a dead letter with its reason, never a stopped stage
            if not about_a_record(exc):
                raise
            log.error("%s: undecodable record at %s:%d:%d (%s)", STAGE, ev.message.topic, ev.message.partition,
                      ev.message.offset, type(exc).__name__)
            out.add(DEAD_LETTERS, STAGE.encode(), ENCODER.encode(undecodable(STAGE, ev.message, exc, settings.max_event_bytes)))
            continue
        await limiter.acquire()
        out.add(RECHECKS, recheck.person_id.encode(), ev.message.value)
        FORWARDED.labels(recheck.hit.kind.value, recheck.hit.source).inc()
    await out.send()
