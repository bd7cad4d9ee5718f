"""Latency from an input event's produce time to the output it causes, at fixed offered rates.

Events are offered by the traffic simulator at each rate with the feeds' own producer
settings. Afterwards both sides are read back from the broker and joined by event id:
an input record's timestamp is its produce time, an output record's timestamp the
moment the worker sent it. An alert's trigger is the latest of its evidence events; an
action joins to its alert version. Funds warnings are reported apart: they must be
first in line under load.
"""

from __future__ import annotations

import threading
import time
import uuid

import msgspec
from confluent_kafka import Consumer, TopicPartition

from bench import mix
from bench.context import Bench
from bench.drain import run_drain
from bench.offsets import TP
from bench.phases import all_stage_inputs, stage_flows, start_flows_at_mark
from bench.processes import all_alive, spawn_workers, stop_children
from bench.producer import BenchProducer
from bench.stages import event_input_topics, furthest_level
from streams.kafka import producer_config
from streams.supervisor import Child

LEVEL_LABELS = {
    "actions": "input produce -> first action on an action topic (route's initial/upgrade actions)",
    "alerts": "input produce -> alert (route stage not running yet: measured to the alerts topic)",
    "signals_enriched": "input produce -> enriched signal (correlate not running yet: measured to signals_enriched)",
    "normalized": "input produce -> normalized record (only ingest runs yet: measured to the norm topics)",
}
P99_LIMIT_MS = 1000.0
MEMORY_FROM_S = 120.0  # memory is compared from minute 2: start-up and caches have settled


class _EventId(msgspec.Struct):
    event_id: str


class _Ingested(msgspec.Struct):
    event: _EventId


class _Fired(msgspec.Struct):
    event_ids: list[str] = []


class _AlertRef(msgspec.Struct):
    alert_id: str
    version: int
    tier: str
    signals: list[_Fired] = []


class _ActionRef(msgspec.Struct):
    alert_id: str
    alert_version: int
    tier: str
    reason: str = "initial"


# Actions that answer an alert version at once (route; escalation:no_phone is route going up
# a tier for a person without a phone, streams/dissuasion.py). Other escalations and SLA
# breaches come later by design (no answer, refused, deadline passed): not an event's latency.
FIRST_RESPONSE_REASONS = ("initial", "upgrade", "escalation:no_phone")


def measure_latency(bench: Bench, workers: list[Child] | None) -> dict:
    """With the chain's workers still running (platform group); else `--workers` fresh ones in their own group."""
    level, out_topics = furthest_level(bench.catalog, bench.stages)
    result = {"measured_to": level, "label": LEVEL_LABELS[level], "topics": out_topics, "steps": [],
              "p99_over_1s_at_rate": None, "workers": bench.config.workers}
    group = bench.group
    if not workers or not all_alive(workers):
        stop_children(bench.platform, workers or [])  # what is left of the chain's: not in the new group's way
        group = bench.fresh_group("latency")
        mark = bench.ends_of(all_stage_inputs(bench))
        start_flows_at_mark(bench, stage_flows(bench, bench.stages, mark, group))
        workers = spawn_workers(bench.platform, bench.stages, group, bench.config.workers, **bench.worker_env())
        for child in workers:
            bench.monitor.watch("worker", child.process.pid)
    # Warm-up at the lowest rate, not measured: a fresh simulator, caches, connections.
    # Drained (within the grace) so the first step does not start behind a backlog.
    _offer_and_drain(bench, group, min(bench.config.rates), bench.config.warmup_s, "latency-warmup")
    for rate in bench.config.rates:
        step = measure_step(bench, group, rate, level, out_topics)
        result["steps"].append(step)
        bench.say(f"latency at {rate:,.0f}/s offered: p99 {step['all']['p99_ms']} ms over {step['all']['count']} samples")
        if result["p99_over_1s_at_rate"] is None and (step["all"]["p99_ms"] or 0) > P99_LIMIT_MS:
            result["p99_over_1s_at_rate"] = rate
    return result


def _offer_and_drain(bench: Bench, group: str, rate: float, seconds: float, label: str) -> dict:
    """Offer at `rate` for `seconds`, then wait (at most the grace) for the chain to drain it."""
    mark = bench.ends_of(all_stage_inputs(bench))
    producer = BenchProducer(producer_config(bench.settings))  # what a partner's feed does
    sim = mix.simulator(bench.settings, producer, persons=bench.config.persons, intel=bench.config.intel,
                        seed=bench.config.seed, run_tag=f"{bench.tag}-{label}")
    stop = threading.Event()
    runner = threading.Thread(target=sim.run, args=(stop, rate), name=label, daemon=True)
    bench.monitor.sample_now()
    started = time.monotonic()
    runner.start()
    stop.wait(seconds)
    stop.set()
    runner.join(60)
    offered_s = time.monotonic() - started
    bench.offsets.track(producer.ends)
    drain_from = time.monotonic()
    timeline = run_drain(bench.offsets, stage_flows(bench, bench.stages, mark, group), drain_from, lambda: True,
                         stall_timeout_s=bench.config.latency_grace_s, timeout_s=bench.config.latency_grace_s)
    bench.monitor.sample_now()
    last = timeline.samples[-1][1] if timeline.samples else {}
    lagging = {name: {"done": last.get(name, 0), "of": total} for name, total in timeline.totals.items()
               if last.get(name, 0) < total}
    return {"mark": mark, "started": started, "ended": time.monotonic(), "offered": producer.delivered,
            "offered_s": offered_s, "drained": timeline.done, "drain_s": round(time.monotonic() - drain_from, 2),
            "lagging": lagging}


def measure_step(bench: Bench, group: str, rate: float, level: str, out_topics: list[str]) -> dict:
    inputs = event_input_topics(bench.catalog)
    alerts = [bench.catalog.topic("alerts").name] if level == "actions" else []
    before = bench.ends_of(inputs + out_topics + alerts)
    run = _offer_and_drain(bench, group, rate, bench.config.duration_s, f"lat{int(rate)}")
    after = bench.ends_of(inputs + out_topics + alerts)
    ranges = {tp: (before[tp], after[tp]) for tp in after if after[tp] > before.get(tp, 0)}
    produced_at = input_times(bench.settings.kafka_bootstrap_servers, {tp: r for tp, r in ranges.items() if tp[0] in inputs})
    samples = [(tier, ms) for tier, ms, _ in join_outputs(bench.settings.kafka_bootstrap_servers, level, ranges,
                                                          produced_at, out_topics, alerts, {})]
    step = {
        "offered_rate": rate,
        "achieved_rate": round(run["offered"] / run["offered_s"], 1) if run["offered_s"] > 0 else 0.0,
        "events_offered": run["offered"],
        "drained": run["drained"],
        "drain_s": run["drain_s"],
        # Not drained within the grace: the slowest events are missing, p99 is a lower bound.
        "censored": not run["drained"],
        "lagging_stages": run["lagging"],  # stages that had not caught up when the grace ran out
        "all": stats([ms for _, ms in samples]),
        "by_tier": {tier: stats([ms for t, ms in samples if t == tier]) for tier in sorted({t for t, _ in samples if t})},
    }
    step["resources"] = bench.monitor.usage(run["started"], run["ended"], run["offered"])
    step["memory"] = memory_growth(bench, run["started"], run["started"] + run["offered_s"])
    return step


def memory_growth(bench: Bench, started: float, ended: float) -> dict:
    """Worker and broker RSS from minute 2 of a step to its end (the soak target: within 10 %).

    Only a step longer than 2.5 min says anything (`--duration 600` is the issue's soak).
    """
    out = {}
    if ended - started < MEMORY_FROM_S + 30:
        return out
    for role in ("worker", "broker"):
        at_2min, at_end = bench.monitor.rss_at(role, started + MEMORY_FROM_S), bench.monitor.rss_at(role, ended)
        if at_2min and at_end:
            out[role] = {"rss_at_2min_mb": at_2min, "rss_at_end_mb": at_end,
                         "growth_pct": round(100 * (at_end - at_2min) / at_2min, 1)}
    return out


def input_times(servers: str, ranges: dict[TP, tuple[int, int]]) -> dict[str, int]:
    """event id -> the input record's timestamp (its produce time, ms) for every input record in `ranges`."""
    decode = msgspec.json.Decoder(_EventId).decode
    produced_at = {}
    for msg in read_ranges(servers, ranges):
        try:
            produced_at[decode(msg.value()).event_id] = msg.timestamp()[1]
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
            continue  # a malformed message of the mix: never reaches an output
    return produced_at


def _decoded(messages, decoder: msgspec.json.Decoder):
    """(message, decoded) for the records that have the fields the join needs; others are not ours."""
    for msg in messages:
        try:
            yield msg, decoder.decode(msg.value())
        except (msgspec.DecodeError, TypeError):  # ValidationError is a DecodeError; TypeError: a tombstone
            continue


def join_outputs(servers: str, level: str, ranges: dict, produced_at: dict[str, int], out_topics: list[str],
                 alert_topics: list[str], triggers: dict[tuple[str, int], tuple[int, str]]
                 ) -> list[tuple[str | None, float, int]]:
    """(tier or None, latency ms, output timestamp ms) per output record in `ranges` that joins to an input.

    `triggers` (alert id, version) -> (trigger time, tier) is filled from the alerts read and
    may come from earlier calls: the soak joins an action to an alert of a minute before.
    """
    out_ranges = {tp: r for tp, r in ranges.items() if tp[0] in out_topics}
    samples = []
    if level in ("normalized", "signals_enriched"):
        decoder = msgspec.json.Decoder(_Ingested if level == "normalized" else _EventId)
        for msg, ref in _decoded(read_ranges(servers, out_ranges), decoder):
            event_id = ref.event.event_id if level == "normalized" else ref.event_id
            if event_id in produced_at:
                samples.append((None, msg.timestamp()[1] - produced_at[event_id], msg.timestamp()[1]))
        return samples
    alert_ranges = out_ranges if level == "alerts" else {tp: r for tp, r in ranges.items() if tp[0] in alert_topics}
    for msg, alert in _decoded(read_ranges(servers, alert_ranges), msgspec.json.Decoder(_AlertRef)):
        known = [produced_at[e] for s in alert.signals for e in s.event_ids if e in produced_at]
        if not known:
            continue
        trigger = max(known)  # the latest evidence is the event that raised this version
        if level == "alerts":
            samples.append((alert.tier, msg.timestamp()[1] - trigger, msg.timestamp()[1]))
        triggers[(alert.alert_id, alert.version)] = (trigger, alert.tier)
    if level == "actions":
        for msg, action in _decoded(read_ranges(servers, out_ranges), msgspec.json.Decoder(_ActionRef)):
            found = triggers.get((action.alert_id, action.alert_version))
            if found and action.reason in FIRST_RESPONSE_REASONS:
                samples.append((action.tier, msg.timestamp()[1] - found[0], msg.timestamp()[1]))
    return samples


def read_ranges(bootstrap: str, ranges: dict[TP, tuple[int, int]], timeout_s: float = 60.0):
    """Every record in [start, end) of each partition, in assign() mode."""
    if not ranges:
        return
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-read-{uuid.uuid4()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in ranges.items()])
    remaining = {tp: end for tp, (_, end) in ranges.items()}
    deadline = time.monotonic() + timeout_s
    try:
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    continue
                tp = (msg.topic(), msg.partition())
                if tp in remaining and msg.offset() < remaining[tp]:
                    yield msg
                    if msg.offset() + 1 >= remaining[tp]:
                        del remaining[tp]
    finally:
        consumer.close()


def stats(values: list[float]) -> dict:
    """p50/p95/p99/max in ms (nearest rank); None when there is no sample."""
    if not values:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ordered = sorted(max(0.0, v) for v in values)  # clocks of one machine; never negative in practice

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))], 1)

    return {"count": len(ordered), "p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99),
            "max_ms": round(ordered[-1], 1), "mean_ms": round(sum(ordered) / len(ordered), 1)}


