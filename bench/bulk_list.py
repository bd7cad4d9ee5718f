"""`antifraud bench --reach-back`: 100,000 intelligence entries at once against a contact index built
from the event mix, beside live traffic (issue 21's bench line).

    antifraud bench --reach-back                      # the issue's run: 100,000 entries, ~12 minutes
    antifraud bench --reach-back --entries 10000 --persons 20000 --build-min 1 --baseline-min 1   # a shake-out
    python -m bench.bulk_list --help                 # the same, without the CLI

It starts the embedded broker and Valkey and `--workers` stream workers (`antifraud worker`, every
stage of streams.worker.STAGES; no channel workers: the measure ends at route's first action), seeds
the registry and the live intelligence lists (the simulator's own, `--intel` entries, less a
`--held-back-share` of the exact-match entries: numbers, accounts, URLs and APKs the fraud stories
use *before* they are listed), then offers the simulator's event mix at `--rate` for the whole run:

1. **build** (`--build-min`): the mix fills the contact index (`ref:contact:*`, streams.reference);
2. **baseline** (`--baseline-min`): live traffic only; input produce -> first action of every alert
   version, funds warnings apart (bench.latency's join: an input record's timestamp is its produce
   time, an action's when route sent it);
3. **reach-back**: `--entries` intelligence entries bulk-produced on the intel input topic at once.
   A `--touched-share` of them are values the index holds contacts for (the held-back entries the
   stories touched first, then other contacted numbers, accounts, URLs and APKs of the index, in the
   lists' shares: residents' SIMs and accounts rented to fraud rings are listed too); the rest are
   values nobody touched (the lists' own generator with another seed, every kind). The same live
   traffic goes on. Sampled every `--every-s`: the loader's progress on the 100,000 (its consumer
   group's lag on in_intel and norm_intel), the reach-back's (lag of intel_reach_back and
   signals_recheck; the workers' antifraud_reach_back_queued/forwarded_total and
   antifraud_retro_alerts_total), retro alerts read from the alerts topic (`reach_back` set), the
   live latency, the reference barrier's waits and each stage's batch seconds (where the worker's
   time goes). Drained = the loader through the 100,000 and both reach-back topics back to 0 and
   every queued re-check forwarded. The window compared with the baseline runs from the publish to
   the drain, and at least as long as the baseline; an event counts in the window its input was
   produced in (retro alerts are never live samples: their evidence is minutes old by design).
4. **index memory**: with the workers stopped, every `ref:contact:*` key is counted (HLEN, HKEYS:
   contacts, residents), `MEMORY USAGE ... SAMPLES 0` is read for a sample of keys (scaled by the
   count; per key and per contact from a fit), then the keys are deleted and the drop of
   `used_memory` is the index's size. Projected to 1 M residents over the 72 h window from the
   measured contacts per event and bytes per contact, at an assumed events per resident per day.

Results: bench-results/reach-back-<stamp>.json (+ .md, meant for docs/performance.md) and the plot
docs/img/reach_back.png (`--plot`). Ratios are to the same run's baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

import msgspec
from confluent_kafka import KafkaException
from confluent_kafka.admin import OffsetSpec

import streams.worker
from bench.config import PROJECT_ROOT, RESULTS_DIR
from bench.latency import FIRST_RESPONSE_REASONS, input_times, read_ranges, stats
from bench.machine import machine_info, versions
from bench.producer import BenchProducer, bulk_config
from bench.soak import Broker, check_lines, plot_link, tree_rss_mb
from bench.stages import event_input_topics, furthest_level
from simulator.reference import KIND_SHARE, KIND_TYPOLOGIES, Intel, intel_updates, location_updates, registry_updates
from simulator.traffic import CN_TZ, TrafficSimulator
from streams.catalog import Catalog, get_catalog
from streams.contracts.reference import IntelKind, IntelUpdate, normalize_intel_value
from streams.kafka import producer_config
from streams.reference import CONTACT_KINDS
from streams.settings import get_settings
from streams.supervisor import Platform, spawn_stream_workers, supervise
from streams.topics_admin import apply_topics

log = logging.getLogger(__name__)

PLOT_FILE = PROJECT_ROOT / "docs" / "img" / "reach_back.png"
# The Done-when: funds-warning p99 during the reach-back within 2x the same run's baseline,
# and the reach-back done "within minutes" (read here as at most 10).
P99_RATIO_LIMIT = 2.0
DRAIN_LIMIT_S = 600.0
BULK_SOURCE = "mps_list"  # a ministry list: what arrives 100,000 at a time
CONTACT_PREFIX = "ref:contact:"
JOIN_MEMORY_S = 15 * 60  # inputs and alert triggers are kept this long for the join (as the soak)
WINDOW_DAYS = 3.0  # rules.yaml reach_back.window_s: 72 h
PER_MILLION = 1_000_000
# Events per resident per day for the projection: the simulator's own rate per resident is a load
# generator's (`antifraud up`: 50 events/s over 2,000 residents = 2,160 a day), not a city's.
# 20 a day is a phone user's calls, SMS and payments; 10 and 50 bracket it.
ASSUMED_EVENTS_PER_DAY = (10, 20, 50)
HEADLINE_EVENTS_PER_DAY = 20
# Intel kinds whose entries are indexed (exact matches), in the lists' shares.
INDEXED_SHARES = {kind: share for kind, share in KIND_SHARE.items() if kind in CONTACT_KINDS}
# Counters read from the workers' /metrics (summed over workers; labels are lists, sources, stages: no identifiers).
PLAIN_METRICS = {
    "antifraud_reach_back_queued_total": "queued",
    "antifraud_reach_back_forwarded_total": "forwarded",
    "antifraud_retro_alerts_total": "retro_alerts",
    "antifraud_reference_barrier_waits_total": "barrier_waits",
    "antifraud_reference_barrier_timeouts_total": "barrier_timeouts",
    "antifraud_reference_barrier_skips_total": "barrier_skips",
    "antifraud_reference_barrier_seconds_sum": "barrier_seconds",
    "antifraud_reference_barrier_seconds_count": "barrier_checks",
}
LABELLED_METRICS = {  # sample name -> (label, key prefix)
    "antifraud_stage_batch_seconds_sum": ("stage", "batch_s"),
    "antifraud_intel_rechecks_total": ("path", "rechecks"),
    "antifraud_intel_rechecks_applied_total": ("outcome", "recheck"),
    "antifraud_reference_updates_total": ("outcome", "updates"),
}


@dataclass(frozen=True)
class ReachBackConfig:
    entries: int = 100_000  # the list published at once
    touched_share: float = 0.05  # of the entries: values the contact index holds contacts for
    persons: int = 100_000  # registry (as `make bench`)
    intel: int = 10_000  # the live lists seeded before the run
    held_back_share: float = 0.2  # of the live lists' exact entries: used by stories before being listed
    # Event mix, messages/s, for the whole run: the soak's rate. One worker is saturated at 500/s with the
    # contact index (enrich registers every contact): its p99 is seconds before any list, no baseline.
    rate: float = 200.0
    build_min: float = 4.0
    baseline_min: float = 2.0
    max_reach_back_min: float = 20.0  # give up waiting for the drain after this
    publish_rate: float | None = None  # None: at once (the case); else entries/s (a variant: a paced intake)
    every_s: float = 5.0
    workers: int | None = None  # None: ANTIFRAUD_WORKER_PROCESSES (1)
    reach_back_rate: float | None = None  # None: the platform's ANTIFRAUD_REACH_BACK_RATE (200/s per worker)
    memory_sample: int = 3_000  # keys whose MEMORY USAGE is read
    seed: int = 7
    out: Path | None = None  # None: bench-results/reach-back-<stamp>.json
    plot: Path = PLOT_FILE
    summary: Path | None = None  # None: next to `out`, .md
    run_dir: Path | None = None
    keep_run_dir: bool = False


# ----------------------------------------------------------------------------- the list
def index_values(keys) -> dict[str, list[str]]:
    """`ref:contact:<kind>:<value>` keys -> kind -> values (a URL's own colons stay in its value)."""
    out: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        key = key.decode() if isinstance(key, bytes) else key
        parts = key.split(":", 3)
        if len(parts) == 4 and parts[0] + ":" + parts[1] + ":" == CONTACT_PREFIX:
            out[parts[2]].append(parts[3])
    return dict(out)


def choose_touched(index: dict[str, list[str]], listed: set[str], preferred: set[str], count: int,
                   rng: random.Random, shares: dict = INDEXED_SHARES) -> list[tuple[str, str]]:
    """`count` (kind, value) pairs the index has contacts for and no live list holds yet.

    The `preferred` values first (the held-back entries the fraud stories touched), then the
    other values of the index in the lists' shares, a kind short of values leaving its share to
    the others. Never a value twice, never one already listed.
    """
    pools = {kind.value if hasattr(kind, "value") else kind: [] for kind in shares}
    chosen: list[tuple[str, str]] = []
    for kind, values in sorted(index.items()):
        if kind not in pools:
            continue
        for value in values:
            if value in listed:
                continue
            if value in preferred:
                chosen.append((kind, value))
            else:
                pools[kind].append(value)
    rng.shuffle(chosen)
    chosen = chosen[:count]
    weights = {kind.value if hasattr(kind, "value") else kind: share for kind, share in shares.items()}
    for values in pools.values():
        rng.shuffle(values)
    while len(chosen) < count and any(pools.values()):
        left = count - len(chosen)
        open_kinds = {k: w for k, w in weights.items() if pools[k]}
        total = sum(open_kinds.values())
        for kind, weight in open_kinds.items():
            take = max(1, round(left * weight / total))
            chosen += [(kind, pools[kind].pop()) for _ in range(min(take, len(pools[kind]), count - len(chosen)))]
            if len(chosen) >= count:
                break
    return chosen


def unknown_entries(count: int, avoid: set[str], seed: int) -> list[tuple[str, str]]:
    """`count` (kind, value) pairs nobody touched: the lists' own generator with another seed, every kind."""
    if count <= 0:
        return []
    intel = Intel(int(count * 1.05) + 100, seed)
    pairs = [(e.kind.value, normalize_intel_value(e.kind, e.value)) for e in intel.entries]
    pairs = [p for p in pairs if p[1] not in avoid]
    random.Random(f"unknown:{seed}").shuffle(pairs)
    return pairs[:count]


def bulk_updates(pairs: list[tuple[str, str]], at: datetime, id_prefix: str, rng: random.Random) -> list[IntelUpdate]:
    out = []
    for n, (kind, value) in enumerate(pairs):
        k = IntelKind(kind)
        out.append(IntelUpdate(event_id=f"{id_prefix}-bulk-{n}", event_time=at, kind=k, value=value,
                               typology=rng.choice(KIND_TYPOLOGIES[k]), confidence=round(rng.uniform(0.6, 1.0), 2),
                               source=BULK_SOURCE))
    return out


# ----------------------------------------------------------------------------- probes
def scrape(urls: list[str]) -> dict[str, float]:
    """The watched counters, summed over the workers (an unreachable worker counts nothing)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = defaultdict(float)
    for url in urls:
        try:
            text = urllib.request.urlopen(url, timeout=3).read().decode()  # noqa: S310 - our own child's endpoint
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in PLAIN_METRICS:
                    totals[PLAIN_METRICS[s.name]] += s.value
                elif s.name in LABELLED_METRICS:
                    label, prefix = LABELLED_METRICS[s.name]
                    totals[f"{prefix}:{s.labels.get(label, '')}"] += s.value
    return {k: round(v, 3) for k, v in sorted(totals.items())}


def group_lag(broker: Broker, group: str, topics: list[str]) -> dict[str, int]:
    """Per topic: records the group has not committed (never committed: from the topic's start)."""
    tps = broker.partitions(topics)
    ends = broker.offsets(tps, OffsetSpec.latest())
    try:
        committed = broker.committed(group)
    except KafkaException:
        committed = {}
    missing = [tp for tp in tps if committed.get(tp) is None]
    starts = broker.offsets(missing, OffsetSpec.earliest()) if missing else {}
    out = dict.fromkeys(topics, 0)
    for tp in tps:
        position = committed.get(tp)
        position = starts.get(tp, 0) if position is None else position
        out[tp[0]] += max(0, ends[tp] - position)
    return out


class _Fired(msgspec.Struct):
    event_ids: list[str] = []


class _Late(msgspec.Struct):
    kind: str


class _Alert(msgspec.Struct):
    alert_id: str
    version: int
    tier: str
    signals: list[_Fired] = []
    reach_back: _Late | None = None


class _Action(msgspec.Struct):
    alert_id: str
    alert_version: int
    tier: str
    reason: str = "initial"


class LatencyJoin:
    """Input produce -> first action of every live alert version; retro alerts counted apart.

    bench.latency.join_outputs' join, with two differences: an alert raised by late intelligence
    (`reach_back` set) is counted, never a sample (its evidence is minutes or days old by design),
    and an alert version is one sample, its first action (a funds warning has several). Funds
    warnings are also timed to the alert itself.
    """

    def __init__(self) -> None:
        self.produced_at: dict[str, int] = {}  # event id -> input produce time (ms)
        self.triggers: dict[tuple[str, int], tuple[int, str]] = {}
        self.answered: set[tuple[str, int]] = set()
        self.points: list[list] = []  # [trigger ms, input -> first action ms, tier]
        self.funds_alert_points: list[list] = []  # [trigger ms, input -> funds-warning alert ms]
        self.retro: Counter = Counter()  # "list/tier" -> retro alert versions

    def join(self, alerts, actions) -> tuple[list[list], int]:
        """(timestamp ms, value) of the alert and action records read (alerts first) -> new points, retro alerts."""
        retro_now, new_points = 0, []
        decode = msgspec.json.Decoder(_Alert).decode
        for ts, value in alerts:
            try:
                alert = decode(value)
            except (msgspec.DecodeError, TypeError):
                continue
            if alert.reach_back is not None:
                self.retro[f"{alert.reach_back.kind}/{alert.tier}"] += 1
                retro_now += 1
                continue
            known = [self.produced_at[e] for s in alert.signals for e in s.event_ids if e in self.produced_at]
            if not known:
                continue
            trigger = max(known)  # the latest evidence is the event that raised this version
            self.triggers[(alert.alert_id, alert.version)] = (trigger, alert.tier)
            if alert.tier == "funds_warning":
                self.funds_alert_points.append([trigger, max(0, ts - trigger)])
        first: dict[tuple[str, int], int] = {}
        decode_action = msgspec.json.Decoder(_Action).decode
        for ts, value in actions:
            try:
                action = decode_action(value)
            except (msgspec.DecodeError, TypeError):
                continue  # not an Action (a carrier's signed request): not joined
            key = (action.alert_id, action.alert_version)
            if action.reason in FIRST_RESPONSE_REASONS and key in self.triggers and key not in self.answered:
                first[key] = min(first.get(key, ts), ts)
        for key, at in first.items():
            self.answered.add(key)
            trigger, tier = self.triggers[key]
            new_points.append([trigger, max(0, at - trigger), tier])
        self.points += new_points
        return new_points, retro_now

    def forget(self, before_ms: float) -> None:
        self.produced_at = {k: ts for k, ts in self.produced_at.items() if ts >= before_ms}
        self.triggers = {k: v for k, v in self.triggers.items() if v[0] >= before_ms}
        self.answered = {k for k in self.answered if k in self.triggers}


class LiveLatency(LatencyJoin):
    """LatencyJoin over what was written since the last sample, read from the broker."""

    def __init__(self, broker: Broker, catalog: Catalog, stages: tuple[str, ...]) -> None:
        super().__init__()
        self.broker = broker
        level, self.out_topics = furthest_level(catalog, stages)
        if level != "actions":
            raise RuntimeError(f"the reach-back bench times live actions; the running stages reach {level} only")
        self.inputs = event_input_topics(catalog)
        self.alerts = catalog.topic("alerts").name
        self.tps = broker.partitions(self.inputs + self.out_topics + [self.alerts])
        self.last: dict[tuple[str, int], int] = {}
        self.inputs_read = 0

    def sample(self) -> dict:
        ends = self.broker.offsets(self.tps, OffsetSpec.latest())
        ranges = {tp: (self.last.get(tp, 0), end) for tp, end in ends.items() if end > self.last.get(tp, 0)}
        self.last.update(ends)
        bootstrap = self.broker.bootstrap
        fresh = input_times(bootstrap, {tp: r for tp, r in ranges.items() if tp[0] in self.inputs})
        self.inputs_read += len(fresh)
        self.produced_at.update(fresh)
        alerts = ((m.timestamp()[1], m.value()) for m in
                  read_ranges(bootstrap, {tp: r for tp, r in ranges.items() if tp[0] == self.alerts}))
        actions = ((m.timestamp()[1], m.value()) for m in
                   read_ranges(bootstrap, {tp: r for tp, r in ranges.items() if tp[0] in self.out_topics}))
        new_points, retro_now = self.join(alerts, actions)
        self.forget(time.time() * 1000 - JOIN_MEMORY_S * 1000)
        out = stats([p[1] for p in new_points])
        out["funds_warning"] = stats([p[1] for p in new_points if p[2] == "funds_warning"])
        out["retro_alerts"] = retro_now
        out["inputs"] = len(fresh)
        return out


# ----------------------------------------------------------------------------- loading
def _produce(producer: BenchProducer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def seed_reference(settings, catalog: Catalog, sim: TrafficSimulator, held_back: set[str]) -> dict:
    """Registry and the live intel lists (less the held-back entries) bulk-produced on the update topics."""
    producer = BenchProducer(bulk_config(settings))
    encode = msgspec.json.Encoder().encode
    intel_topic, registry_topic = catalog.topic("in_intel").name, catalog.topic("in_registry").name
    now = datetime.now(CN_TZ)
    intel = registry = 0
    for update in intel_updates(sim.intel, now, sim.ids.namespace):
        if update.value in held_back:
            continue
        _produce(producer, intel_topic, encode(update), f"{update.kind.value}:{update.value}".encode())
        intel += 1
    for update in chain(location_updates(sim.population.city, now, sim.ids.namespace),
                        registry_updates(sim.population, now, sim.ids.namespace)):
        _produce(producer, registry_topic, encode(update), update.identifier.encode())
        registry += 1
        if registry % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return {"intel_updates": intel, "registry_updates": registry, "failed": producer.failed}


def held_back_values(intel: Intel, share: float, seed: int) -> set[str]:
    """A share of the live exact-match entries, by normalized value: the stories touch them before they are listed."""
    live = [e for e in intel.entries if e.live and e.kind in CONTACT_KINDS]
    rng = random.Random(f"held-back:{seed}")
    return {normalize_intel_value(e.kind, e.value) for e in rng.sample(live, round(len(live) * share))}


def listed_values(intel: Intel, held_back: set[str]) -> set[str]:
    return {v for v in (normalize_intel_value(e.kind, e.value) for e in intel.entries) if v not in held_back}


def scan_index(client) -> list[bytes]:
    return list(client.scan_iter(match=CONTACT_PREFIX + "*", count=10_000))


# ----------------------------------------------------------------------------- index memory
def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x: (a, b); (mean y, 0) when x does not vary."""
    n = len(points)
    if not n:
        return 0.0, 0.0
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if not var:
        return my, 0.0
    b = sum((x - mx) * (y - my) for x, y in points) / var
    return my - b * mx, b


def measure_index(client, sample: int, seed: int, delete: bool = True) -> dict:
    """Keys, contacts and residents of the contact index, its memory sampled and (delete) by the drop on deleting it."""
    started = time.monotonic()
    keys = scan_index(client)
    by_kind: Counter = Counter()
    fields = 0
    persons: set[bytes] = set()
    lens: dict[bytes, int] = {}
    for i in range(0, len(keys), 5_000):
        chunk = keys[i:i + 5_000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hkeys(key)
        for key, names in zip(chunk, pipe.execute()):
            lens[key] = len(names)
            fields += len(names)
            by_kind[key.split(b":", 3)[2].decode()] += len(names)
            persons.update(name.split(b" ", 1)[0] for name in names)
    rng = random.Random(f"memory:{seed}")
    sampled = rng.sample(keys, min(sample, len(keys)))
    pipe = client.pipeline(transaction=False)
    for key in sampled:
        pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
    usage = [(lens[key], int(u or 0)) for key, u in zip(sampled, pipe.execute())]
    per_key, per_field = fit_line([(float(n), float(u)) for n, u in usage])
    sampled_fields = sum(n for n, _ in usage)
    estimate = (sum(u for _, u in usage) / len(usage) * len(keys)) if usage else 0
    out = {
        "keys": len(keys), "contacts": fields, "residents": len(persons), "contacts_by_list": dict(by_kind),
        "contacts_per_key": {"mean": round(fields / len(keys), 2) if keys else None, "max": max(lens.values(), default=0)},
        "sampled_keys": len(usage), "sampled_contacts": sampled_fields,
        "estimated_bytes": int(estimate), "fit_bytes_per_key": round(per_key, 1), "fit_bytes_per_contact": round(per_field, 1),
    }
    if delete and keys:
        before = int(client.info("memory")["used_memory"])
        for i in range(0, len(keys), 1_000):
            client.delete(*keys[i:i + 1_000])
        after = int(client.info("memory")["used_memory"])
        out.update(used_memory_before=before, used_memory_after=after, deleted_bytes=before - after)
    out["bytes"] = out.get("deleted_bytes") or out["estimated_bytes"]
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def projection(index: dict, events_offered: int, persons: int, rate: float) -> dict:
    """Bytes per contact and per resident as measured, and the index for 1 M residents over 72 h.

    Linear in contacts (each costs what the run's index cost per contact: the keys' overhead
    included, an upper bound, since more residents touch the same numbers), and at the fitted
    marginal cost of one more contact in a key that exists (a lower bound).
    """
    contacts, total = index.get("contacts") or 0, index.get("bytes") or 0
    if not contacts or not events_offered:
        return {}
    per_contact = total / contacts
    per_event = contacts / events_offered
    marginal = index.get("fit_bytes_per_contact") or per_contact
    out = {
        "bytes_per_contact": round(per_contact, 1),
        "marginal_bytes_per_contact": round(marginal, 1),
        "contacts_per_event": round(per_event, 3),
        "bytes_per_resident_in_run": round(total / index["residents"], 1) if index.get("residents") else None,
        "run_events_per_resident_day": round(rate * 86400 / persons, 1) if persons else None,
        "per_million": [],
    }
    for per_day in ASSUMED_EVENTS_PER_DAY:
        c = PER_MILLION * per_day * WINDOW_DAYS * per_event
        out["per_million"].append({
            "events_per_resident_day": per_day, "contacts": int(c),
            "bytes_per_resident": round(per_day * WINDOW_DAYS * per_event * per_contact, 1),
            "gb": round(c * per_contact / 1e9, 2), "gb_marginal": round(c * marginal / 1e9, 2),
        })
    return out


# ----------------------------------------------------------------------------- summary
def window_stats(points: list[list], start_ms: float, end_ms: float) -> dict:
    """Live latency of the inputs produced in [start, end): all alert versions, and funds warnings apart."""
    inside = [p for p in points if start_ms <= p[0] < end_ms]
    return {"all": stats([p[1] for p in inside]),
            "funds_warning": stats([p[1] for p in inside if p[2] == "funds_warning"])}


def ratio(value, reference) -> float | None:
    return round(value / reference, 2) if value is not None and reference else None


def summarize(marks: dict, points: list[list], funds_alert_points: list[list], samples: list[dict],
              bulk: dict, index: dict, events_offered: int, config: ReachBackConfig, error: str | None) -> dict:
    """Baseline and reach-back windows, their ratios, the drain, the Done-when verdicts."""
    s = {"type": "summary", "finished_at": _now(), "error": error, "samples": len(samples)}
    baseline_start, publish = marks.get("baseline_start"), marks.get("publish_start")
    if baseline_start is None or publish is None:
        s["checks"] = {}
        s["ok"] = False
        return s
    drained = marks.get("drained")
    baseline_len = publish - baseline_start
    window_end = max(drained or marks.get("reach_back_end", publish), publish + baseline_len)
    s["windows_ms"] = {"baseline": [baseline_start, publish], "reach_back": [publish, window_end]}
    s["baseline"] = window_stats(points, baseline_start, publish)
    s["reach_back"] = window_stats(points, publish, window_end)
    for name, (a, b) in s["windows_ms"].items():
        s[name]["funds_warning_alert"] = stats([p[1] for p in funds_alert_points if a <= p[0] < b])
    b, r = s["baseline"], s["reach_back"]
    s["ratios"] = {
        "funds_warning_p50": ratio(r["funds_warning"]["p50_ms"], b["funds_warning"]["p50_ms"]),
        "funds_warning_p99": ratio(r["funds_warning"]["p99_ms"], b["funds_warning"]["p99_ms"]),
        "funds_warning_alert_p99": ratio(r["funds_warning_alert"]["p99_ms"], b["funds_warning_alert"]["p99_ms"]),
        "all_p50": ratio(r["all"]["p50_ms"], b["all"]["p50_ms"]),
        "all_p99": ratio(r["all"]["p99_ms"], b["all"]["p99_ms"]),
    }
    drain_s = (drained - publish) / 1000 if drained else None
    loader_s = (marks["loader_done"] - publish) / 1000 if marks.get("loader_done") else None
    last = samples[-1]["metrics"] if samples else {}
    at_publish = next((x["metrics"] for x in reversed(samples) if x["t_ms"] <= publish), {})
    queued = last.get("queued", 0) - at_publish.get("queued", 0)
    forwarded = last.get("forwarded", 0) - at_publish.get("forwarded", 0)
    s["reach_back_run"] = {
        "entries": bulk.get("entries"), "touched_entries": bulk.get("touched"),
        "publish_s": round((marks["publish_end"] - publish) / 1000, 2) if marks.get("publish_end") else None,
        "loader_done_s": round(loader_s, 1) if loader_s is not None else None,
        "loader_entries_per_s": round(bulk["entries"] / loader_s, 1) if loader_s and bulk.get("entries") else None,
        "drained": drained is not None, "drain_s": round(drain_s, 1) if drain_s is not None else None,
        "queued": int(queued), "forwarded": int(forwarded),
        "forwarded_per_s": round(forwarded / drain_s, 1) if drain_s else None,
        "direct_rechecks": int(last.get("rechecks:direct", 0) - at_publish.get("rechecks:direct", 0)),
        "retro_alerts_metric": int(last.get("retro_alerts", 0) - at_publish.get("retro_alerts", 0)),
        "retro_alerts_read": sum(x["latency"]["retro_alerts"] for x in samples if x["t_ms"] > publish),
        "barrier_timeouts": int(last.get("barrier_timeouts", 0) - at_publish.get("barrier_timeouts", 0)),
        "barrier_waits": int(last.get("barrier_waits", 0) - at_publish.get("barrier_waits", 0)),
        "barrier_skips": int(last.get("barrier_skips", 0) - at_publish.get("barrier_skips", 0)),
        "barrier_wait_s": round(last.get("barrier_seconds", 0) - at_publish.get("barrier_seconds", 0), 1),
    }
    s["stage_seconds"] = stage_seconds(samples, marks)
    s["index"] = index
    s["projection"] = projection(index, events_offered, config.persons, config.rate)
    s["events_offered"] = events_offered
    p99 = s["ratios"]["funds_warning_p99"]
    s["checks"] = {
        "funds_warning_p99_within_2x": {
            "ok": p99 is not None and p99 <= P99_RATIO_LIMIT, "ratio": p99, "limit": P99_RATIO_LIMIT,
            "baseline_ms": b["funds_warning"]["p99_ms"], "reach_back_ms": r["funds_warning"]["p99_ms"],
            "baseline_count": b["funds_warning"]["count"], "reach_back_count": r["funds_warning"]["count"],
        },
        "reach_back_within_minutes": {"ok": drain_s is not None and drain_s <= DRAIN_LIMIT_S, "drain_s": s["reach_back_run"]["drain_s"],
                                      "limit_s": DRAIN_LIMIT_S},
    }
    s["ok"] = error is None and all(c["ok"] for c in s["checks"].values())
    return s


def stage_seconds(samples: list[dict], marks: dict) -> dict:
    """Each stage's micro-batch seconds per wall-clock second in the baseline and in the reach-back window:
    where the worker's one event loop went (a share over 1.0 means several workers)."""
    out = {}
    for name, (a, b) in (("baseline", ("baseline_start", "publish_start")), ("reach_back", ("publish_start", "drained"))):
        start, end = marks.get(a), marks.get(b) or (samples[-1]["t_ms"] if samples else None)
        if start is None or end is None:
            continue
        # From the last sample at or before the window's start to the last at or before its end.
        first = next((x for x in reversed(samples) if x["t_ms"] <= start), None)
        last = next((x for x in reversed(samples) if x["t_ms"] <= end), None)
        if first is None or last is None or last["t_ms"] <= first["t_ms"]:
            continue
        span = (last["t_ms"] - first["t_ms"]) / 1000
        out[name] = {k.split(":", 1)[1]: round((last["metrics"].get(k, 0) - first["metrics"].get(k, 0)) / span, 3)
                     for k in last["metrics"] if k.startswith("batch_s:")}
        # Inside enrich's batch time: its reference barrier (one ListOffsets and one HGETALL per batch, and the waits).
        out[name]["enrich: reference barrier"] = round(
            (last["metrics"].get("barrier_seconds", 0) - first["metrics"].get("barrier_seconds", 0)) / span, 3)
        out[name]["_window_s"] = round(span, 1)
    return out


def check_rows(s: dict) -> list[tuple[str, bool | None, str]]:
    c, rows = s.get("checks", {}), []
    if "funds_warning_p99_within_2x" in c:
        f = c["funds_warning_p99_within_2x"]
        rows.append((f"funds-warning p99 during the reach-back within {f['limit']:g}x the same run's baseline", f["ok"],
                     f"{_x(f['ratio'])} ({_ms(f['reach_back_ms'])} over {f['reach_back_count']} against "
                     f"{_ms(f['baseline_ms'])} over {f['baseline_count']}; input produce -> first action)"))
    if "reach_back_within_minutes" in c:
        d, run = c["reach_back_within_minutes"], s["reach_back_run"]
        rows.append((f"the reach-back drained within {d['limit_s'] / 60:g} minutes", d["ok"],
                     f"{_s(d['drain_s'])} from the publish: loader through {run['entries']:,} entries after "
                     f"{_s(run['loader_done_s'])}, {run['forwarded']:,} of {run['queued']:,} paced re-checks forwarded "
                     f"({run['forwarded_per_s'] or 0:,.0f}/s), {run['retro_alerts_metric']:,} retro alerts"))
    p = s.get("projection") or {}
    head = next((x for x in p.get("per_million", []) if x["events_per_resident_day"] == HEADLINE_EVENTS_PER_DAY), None)
    if head:
        rows.append(("contact index per 1 M residents over 72 h (reported, not a target)", None,
                     f"{head['gb']:.2f} GB at {HEADLINE_EVENTS_PER_DAY} events per resident per day "
                     f"({p['bytes_per_contact']:.0f} B per contact, {p['contacts_per_event']:.2f} contacts per event; "
                     f"{head['gb_marginal']:.2f} GB at the marginal {p['marginal_bytes_per_contact']:.0f} B per contact)"))
    return rows


def summary_lines(s: dict) -> list[str]:
    lines = check_lines(check_rows(s))
    if s.get("error"):
        lines.append(f"error: {s['error']}")
    return lines


def markdown(s: dict, header: dict, out: Path, plot_path: Path, summary_path: Path) -> str:
    cfg, m, v = header["config"], header["machine"], header.get("versions", {})
    image = plot_link(plot_path, summary_path)
    run = s.get("reach_back_run", {})
    at = f"at {cfg['publish_rate']:,.0f} per second" if cfg.get("publish_rate") else "at once"
    lines = [
        f"### Reach-back: {cfg['entries']:,} entries {at}",
        "",
        f"Generated by `antifraud bench --reach-back` ({header['started_at']} .. {s['finished_at']}; "
        f"{m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB; Kafka {v.get('kafka', '?')}, Valkey {v.get('valkey', '?')}; "
        f"{cfg['persons']:,} residents, {cfg['intel']:,} live intel entries ({cfg['held_back_share']:.0%} of the exact ones "
        f"held back), event mix at {cfg['rate']:g}/s, {header.get('workers', '?')} worker(s); build {cfg['build_min']:g} min, "
        f"baseline {cfg['baseline_min']:g} min; {run.get('touched_entries') or 0:,} of the entries touched by residents; "
        f"results `{out.name}`).",
        "",
        f"![reach-back]({image})",
        "",
        "| Done when | result |",
        "| --- | --- |",
    ]
    verdict = {True: "**met**: ", False: "**not met**: ", None: ""}
    lines += [f"| {what} | {verdict[met]}{figures} |" for what, met, figures in check_rows(s)]
    if s.get("error"):
        lines.append(f"| error | {s['error']} |")
    for name, w in (s.get("worker_restarts") or {}).items():
        lines.append(f"| worker restarted | {name}: {w['restarts']} time(s), last exit {w['last_exit']} "
                     f"(crashed agents: {', '.join(w['crashed_agents']) or '-'}) |")
    if "baseline" in s:
        lines += ["", "| live latency (input produce ->) | baseline | during the reach-back | ratio |", "| --- | ---: | ---: | ---: |"]
        for label, key, stat, rkey in (
            ("funds warning, first action p50", "funds_warning", "p50_ms", "funds_warning_p50"),
            ("funds warning, first action p99", "funds_warning", "p99_ms", "funds_warning_p99"),
            ("funds warning, alert p99", "funds_warning_alert", "p99_ms", "funds_warning_alert_p99"),
            ("every alert version, first action p50", "all", "p50_ms", "all_p50"),
            ("every alert version, first action p99", "all", "p99_ms", "all_p99"),
        ):
            lines.append(f"| {label} | {_ms(s['baseline'][key][stat])} | {_ms(s['reach_back'][key][stat])} | "
                         f"{_x(s['ratios'][rkey])} |")
        lines.append(f"| samples (funds warnings / all) | {s['baseline']['funds_warning']['count']} / "
                     f"{s['baseline']['all']['count']} | {s['reach_back']['funds_warning']['count']} / "
                     f"{s['reach_back']['all']['count']} | |")
    if run:
        lines += ["", "| reach-back | |", "| --- | ---: |"]
        for label, value in (
            ("entries published / touched by residents", f"{run['entries']:,} / {run['touched_entries']:,}"),
            ("publish took", _s(run["publish_s"])),
            ("loader through the entries after", _s(run["loader_done_s"])),
            ("drained after", _s(run["drain_s"])),
            ("re-checks queued (paced) / forwarded", f"{run['queued']:,} / {run['forwarded']:,}"),
            ("re-checks sent direct (contacts of the last minute)", f"{run['direct_rechecks']:,}"),
            ("retro alerts (metric / read from the alerts topic)", f"{run['retro_alerts_metric']:,} / {run['retro_alerts_read']:,}"),
            ("reference barrier: batches that waited / gave up after the timeout / skipped (loader far behind)",
             f"{run['barrier_waits']:,} / {run['barrier_timeouts']:,} / {run['barrier_skips']:,}"),
            ("reference barrier: seconds spent in it (all batches)", f"{run['barrier_wait_s']:,}"),
        ):
            lines.append(f"| {label} | {value} |")
        tiers: Counter = Counter()
        for key, n in (s.get("retro_alerts_by_list_tier") or {}).items():
            tiers[key.split("/", 1)[-1]] += n
        if tiers:
            lines.append("| retro alerts by tier | " + ", ".join(f"{t} {n:,}" for t, n in tiers.most_common()) + " |")
    st = s.get("stage_seconds") or {}
    if st.get("baseline") and st.get("reach_back"):
        lines += ["", "| stage: micro-batch seconds per second | baseline | during the reach-back |", "| --- | ---: | ---: |"]
        for stage in sorted(k for k in st["reach_back"] if not k.startswith("_")):
            lines.append(f"| {stage} | {st['baseline'].get(stage, 0):.3f} | {st['reach_back'][stage]:.3f} |")
    idx, p = s.get("index") or {}, s.get("projection") or {}
    if idx.get("keys"):
        lines += ["", "| contact index | |", "| --- | ---: |",
                  f"| keys / contacts / residents with contacts | {idx['keys']:,} / {idx['contacts']:,} / {idx['residents']:,} |",
                  f"| memory (used_memory drop on deleting it; sampled estimate) | {_mb(idx['bytes'])} ; {_mb(idx['estimated_bytes'])} |",
                  f"| per contact (all in; marginal, fitted) | {p.get('bytes_per_contact', 0):,.0f} B ; {p.get('marginal_bytes_per_contact', 0):,.0f} B |",
                  f"| per key (fitted) | {idx['fit_bytes_per_key']:,.0f} B |",
                  f"| contacts per offered event of the mix | {p.get('contacts_per_event', 0):.3f} |",
                  f"| per resident with contacts, this run ({p.get('run_events_per_resident_day')} events per resident per day, "
                  f"{s.get('run_minutes', 0):.0f} min) | {p.get('bytes_per_resident_in_run') or 0:,.0f} B |"]
        lines += ["", "| 1 M residents, 72 h, events per resident per day | contacts | bytes per resident | GB | GB at the marginal cost |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        for row in p.get("per_million", []):
            lines.append(f"| {row['events_per_resident_day']} | {row['contacts']:,} | {row['bytes_per_resident']:,.0f} | "
                         f"{row['gb']:.2f} | {row['gb_marginal']:.2f} |")
    return "\n".join(lines) + "\n"


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _s(value) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def _mb(value) -> str:
    return "-" if not value else f"{value / 1024 / 1024:,.1f} MB"


# ----------------------------------------------------------------------------- plot
def plot(samples: list[dict], points: list[list], marks: dict, path: Path, summary: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = marks["traffic_start"]

    def minute(ms: float) -> float:
        return (ms - t0) / 60_000

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    others = [p for p in points if p[2] != "funds_warning"]
    funds = [p for p in points if p[2] == "funds_warning"]
    top.scatter([minute(p[0]) for p in others], [max(p[1], 1) for p in others], s=4, color="tab:gray", alpha=0.35,
                label="other alert versions")
    top.scatter([minute(p[0]) for p in funds], [max(p[1], 1) for p in funds], s=9, color="tab:red", label="funds warnings")
    for name, color in (("baseline", "tab:blue"), ("reach_back", "tab:orange")):
        w = summary.get("windows_ms", {}).get(name)
        if w:
            top.axvspan(minute(w[0]), minute(w[1]), color=color, alpha=0.08, label=f"{name.replace('_', '-')} window")
            p99 = summary.get(name, {}).get("funds_warning", {}).get("p99_ms")
            if p99:
                top.hlines(p99, minute(w[0]), minute(w[1]), colors=color, linestyles="--", linewidth=1.2,
                           label=f"funds p99 {name.replace('_', '-')} {p99:,.0f} ms")
    top.set_yscale("log")
    top.set_ylabel("input produce -> first action (ms)")
    top.set_title("live latency, by the input's produce time")
    top.legend(fontsize=7, loc="upper left")
    xs = [minute(x["t_ms"]) for x in samples]
    publish = summary.get("windows_ms", {}).get("reach_back", [None])[0]
    base = next((x["metrics"] for x in reversed(samples) if publish and x["t_ms"] <= publish), {})
    total = summary.get("reach_back_run", {}).get("entries") or 0
    loaded = [max(0, total - x["lag"].get("in_intel", 0) - x["lag"].get("norm_intel", 0))
              if publish and x["t_ms"] > publish else 0 for x in samples]
    bottom.plot(xs, loaded, color="tab:green", label="entries through ingest and the loader (of the list)")
    for key, color, label in (("queued", "tab:purple", "re-checks queued (paced)"),
                              ("forwarded", "tab:orange", "re-checks forwarded"),
                              ("retro_alerts", "tab:red", "retro alerts")):
        bottom.plot(xs, [max(0, x["metrics"].get(key, 0) - base.get(key, 0)) if publish and x["t_ms"] > publish else 0
                         for x in samples], color=color, label=label)
    bottom.plot(xs, [x["lag"].get("intel_reach_back", 0) for x in samples], color="tab:brown", linestyle=":",
                label="intel_reach_back lag")
    for mark, style in (("publish_start", "-"), ("loader_done", "--"), ("drained", ":")):
        if marks.get(mark):
            for ax in (top, bottom):
                ax.axvline(minute(marks[mark]), color="black", linestyle=style, linewidth=0.8)
            bottom.annotate(mark.replace("_", " "), (minute(marks[mark]), 1), fontsize=7, rotation=90,
                            xytext=(2, 0), textcoords="offset points")
    bottom.set_yscale("symlog", linthresh=10)
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("minutes since the live traffic started")
    bottom.set_title("reach-back progress")
    bottom.legend(fontsize=7, loc="upper left")
    verdict = "Done-when met" if summary.get("ok") else "Done-when NOT met"
    r = summary.get("ratios", {})
    fig.suptitle(f"reach-back: {total:,} entries at once; funds-warning p99 x{r.get('funds_warning_p99') or 0:.2f} "
                 f"of the baseline; {verdict}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the run
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _ms_now() -> int:
    return int(time.time() * 1000)


class Run:
    """The platform, the traffic and the probes of one run."""

    def __init__(self, config: ReachBackConfig, stop: threading.Event) -> None:
        self.config, self.stop = config, stop
        self.samples: list[dict] = []
        self.marks: dict[str, int] = {}
        self.bulk: dict = {}
        self.index: dict = {}
        self.traffic_producer: BenchProducer | None = None

    def sample(self, phase: str) -> dict:
        lat = self.latency.sample()
        lag = group_lag(self.broker, self.group, self.lag_topics)
        by_id = {self.ids.get(t, t): n for t, n in lag.items()}
        metrics = scrape(self.metrics_urls)
        rss = {c.name: tree_rss_mb(c.process.pid) for c in self.workers if c.process is not None}
        for server in self.platform.servers:
            rss[server.name] = tree_rss_mb(server.process.pid)
        now = _ms_now()
        record = {"type": "sample", "t_ms": now, "minute": round((now - self.marks["traffic_start"]) / 60_000, 2),
                  "phase": phase, "lag": by_id, "metrics": metrics, "latency": lat, "rss_mb": rss}
        self.samples.append(record)
        return record

    def say(self, record: dict) -> None:
        lat, lag, m = record["latency"], record["lag"], record["metrics"]
        live = sum(n for t, n in lag.items() if t not in ("in_intel", "norm_intel", "intel_reach_back", "signals_recheck",
                                                          "in_registry", "norm_registry"))
        line = (f"[{record['minute']:6.2f} min] {record['phase']:<10} live: {lat['inputs']:,} in, "
                f"{lat['count']} actions p99 {lat['p99_ms']} ms, funds {lat['funds_warning']['count']} p99 "
                f"{lat['funds_warning']['p99_ms']} ms, lag {live:,}")
        if record["phase"] in ("reach_back", "tail") and self.bulk:
            base = self.base_metrics
            line += (f" | list: intel lag {lag.get('in_intel', 0) + lag.get('norm_intel', 0):,}, "
                     f"queued {m.get('queued', 0) - base.get('queued', 0):,.0f}, "
                     f"forwarded {m.get('forwarded', 0) - base.get('forwarded', 0):,.0f} "
                     f"(lag {lag.get('intel_reach_back', 0):,}, recheck lag {lag.get('signals_recheck', 0):,}), "
                     f"retro alerts {m.get('retro_alerts', 0) - base.get('retro_alerts', 0):,.0f}, "
                     f"barrier timeouts {m.get('barrier_timeouts', 0) - base.get('barrier_timeouts', 0):,.0f} "
                     f"skips {m.get('barrier_skips', 0) - base.get('barrier_skips', 0):,.0f}")
        print(line, flush=True)

    def sample_for(self, phase: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < end:
            self._tick(phase, end)

    def _tick(self, phase: str, end: float) -> dict | None:
        started = time.monotonic()
        try:
            record = self.sample(phase)
        except KafkaException as exc:
            print(f"reach-back: a sample was skipped: {exc}", flush=True)
            record = None
        else:
            self.say(record)
        self.stop.wait(max(0.0, min(self.config.every_s - (time.monotonic() - started), end - time.monotonic())))
        return record


def run(config: ReachBackConfig) -> dict:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = config.out or RESULTS_DIR / f"reach-back-{stamp}.json"
    summary_path = config.summary or out.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    run_dir = config.run_dir or settings.run_dir / "reach-back" / stamp
    settings = settings.model_copy(update={"run_dir": run_dir})
    logging.getLogger("simulator").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    r = Run(config, stop)
    workers_n = config.workers or settings.worker_processes
    header = {"type": "start", "started_at": _now(), "config": {**asdict(config), "out": str(out), "plot": str(config.plot),
              "summary": str(summary_path), "run_dir": str(run_dir)}, "machine": machine_info(), "workers": workers_n}
    platform = Platform(settings)
    error, traffic, supervisor = None, None, None
    traffic_stop, supervisor_stop = threading.Event(), threading.Event()
    events_offered = 0
    try:
        settings = platform.start_servers()
        header["versions"] = versions(settings.redis_url)
        catalog = get_catalog(settings.topics_file)
        apply_topics(catalog, settings.kafka_bootstrap_servers, settings.replication_factor)
        env = {"ANTIFRAUD_REACH_BACK_RATE": str(config.reach_back_rate)} if config.reach_back_rate else {}
        r.platform, r.group = platform, catalog.app_id
        r.workers = spawn_stream_workers(platform, workers_n, **env)
        # As `antifraud up` does: a worker that exits is restarted (with back-off); restarts are reported.
        supervisor = supervise(platform, supervisor_stop)
        r.metrics_urls = [c.metrics_url for c in r.workers]
        r.broker = Broker(settings.kafka_bootstrap_servers)
        r.ids = {t.name: t.id for t in catalog.topics.values()}
        stages = tuple(streams.worker.STAGES)
        consumed = sorted({t.name for t in catalog.topics.values() if t.kind not in ("changelog", "faust")
                           and any(f"agents/{s}.py" in t.consumers for s in stages)})
        r.lag_topics = consumed
        print(f"reach-back: {workers_n} worker(s), {config.persons:,} residents, {config.intel:,} live intel entries; "
              f"results {out}; run dir {run_dir}", flush=True)
        # ---- reference data
        producer = BenchProducer(producer_config(settings))
        sim = TrafficSimulator(settings, n_persons=config.persons, n_intel=config.intel, seed=config.seed,
                               run_tag=f"rb{stamp}", producer=producer)
        held_back = held_back_values(sim.intel, config.held_back_share, config.seed)
        listed = listed_values(sim.intel, held_back)
        started = time.monotonic()
        seeded = seed_reference(settings, catalog, sim, held_back)
        reference_topics = [catalog.topic(i).name for i in ("in_registry", "in_intel", "norm_registry", "norm_intel")]
        while not stop.is_set():
            try:
                lag = group_lag(r.broker, r.group, reference_topics)
            except KafkaException as exc:  # a passing answer of a broker just started (a leader not elected yet)
                lag = {"not answered": str(exc)}
                stop.wait(2)
                continue
            if sum(lag.values()) == 0:
                break
            if time.monotonic() - started > 900:
                raise RuntimeError(f"the reference data was not loaded within 15 minutes (lag {lag})")
            print(f"reach-back: loading reference data ({seeded['registry_updates'] + seeded['intel_updates']:,} updates): "
                  f"{sum(lag.values()):,} to go", flush=True)
            stop.wait(5)
        header["reference"] = {**seeded, "held_back": len(held_back), "load_s": round(time.monotonic() - started, 1)}
        r.latency = LiveLatency(r.broker, catalog, stages)
        # ---- live traffic, for the whole run
        traffic = threading.Thread(target=sim.run, args=(traffic_stop, config.rate), name="traffic", daemon=True)
        r.marks["traffic_start"] = _ms_now()
        traffic.start()
        r.sample_for("build", config.build_min * 60)
        # ---- the list: chosen from the index as the build left it (before the baseline: the scan costs Valkey time)
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        keys = scan_index(client)
        index = index_values(keys)
        rng = random.Random(f"bulk:{config.seed}")
        touched = choose_touched(index, listed, held_back, round(config.entries * config.touched_share), rng)
        avoid = listed | held_back | {v for values in index.values() for v in values}
        unknown = unknown_entries(config.entries - len(touched), avoid, config.seed + 101)
        pairs = touched + unknown
        rng.shuffle(pairs)
        r.bulk = {"entries": len(pairs), "touched": len(touched), "unknown": len(unknown),
                  "touched_held_back": sum(1 for _, v in touched if v in held_back),
                  "touched_by_list": dict(Counter(k for k, _ in touched)), "unknown_by_list": dict(Counter(k for k, _ in unknown)),
                  "index_keys_at_choice": len(keys)}
        touched_contacts = [client.hlen(CONTACT_PREFIX + f"{k}:{v}") for k, v in touched[:2_000]]
        r.bulk["contacts_per_touched_entry"] = {"sampled": len(touched_contacts),
                                                "mean": round(sum(touched_contacts) / max(len(touched_contacts), 1), 2),
                                                "max": max(touched_contacts, default=0)}
        print(f"reach-back: the list: {len(touched):,} entries the index has contacts for "
              f"({r.bulk['touched_held_back']:,} held back from the live lists), {len(unknown):,} nobody touched; "
              f"index {len(keys):,} keys", flush=True)
        del keys, index
        # ---- baseline
        r.marks["baseline_start"] = _ms_now()
        r.sample_for("baseline", config.baseline_min * 60)
        # ---- reach-back: published at once, sampled until drained
        r.base_metrics = r.samples[-1]["metrics"] if r.samples else {}
        bulk_producer = BenchProducer(bulk_config(settings))
        intel_topic = catalog.topic("in_intel").name
        encode = msgspec.json.Encoder().encode

        def publish() -> None:
            began = time.monotonic()
            for n, update in enumerate(bulk_updates(pairs, datetime.now(CN_TZ), f"rb{stamp}", random.Random(config.seed))):
                _produce(bulk_producer, intel_topic, encode(update), f"{update.kind.value}:{update.value}".encode())
                if config.publish_rate and n % 50 == 0:  # a list fed in at a rate instead of at once (a variant)
                    ahead = began + n / config.publish_rate - time.monotonic()
                    if ahead > 0:
                        bulk_producer.poll(0)
                        time.sleep(ahead)
            bulk_producer.flush(120)
            r.marks["publish_end"] = _ms_now()

        publisher = threading.Thread(target=publish, name="publish", daemon=True)
        r.marks["publish_start"] = _ms_now()
        publisher.start()
        deadline = time.monotonic() + config.max_reach_back_min * 60
        min_end = r.marks["publish_start"] + (r.marks["publish_start"] - r.marks["baseline_start"])
        while not stop.is_set() and time.monotonic() < deadline:
            record = r._tick("reach_back", deadline)
            if record is None or publisher.is_alive():
                continue
            lag, m, base = record["lag"], record["metrics"], r.base_metrics
            loader_done = lag.get("in_intel", 0) == 0 and lag.get("norm_intel", 0) == 0
            if loader_done and "loader_done" not in r.marks:
                r.marks["loader_done"] = record["t_ms"]
            if (loader_done and "drained" not in r.marks and lag.get("intel_reach_back", 0) == 0
                    and lag.get("signals_recheck", 0) == 0
                    and m.get("forwarded", 0) - base.get("forwarded", 0) >= m.get("queued", 0) - base.get("queued", 0)):
                r.marks["drained"] = record["t_ms"]
                print(f"reach-back: drained {(record['t_ms'] - r.marks['publish_start']) / 1000:.1f} s after the publish",
                      flush=True)
            if "drained" in r.marks and record["t_ms"] >= min_end:
                break
        r.marks["reach_back_end"] = _ms_now()
        if "drained" not in r.marks:
            error = f"the reach-back had not drained {config.max_reach_back_min:g} minutes after the publish"
        # ---- tail: the traffic stops; the last live events are answered
        traffic_stop.set()
        traffic.join(60)
        events_offered = producer.delivered
        r.marks["traffic_end"] = _ms_now()
        tail_end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < tail_end:
            record = r._tick("tail", tail_end)
            if record is not None:
                live = {t: n for t, n in record["lag"].items() if t not in ("in_registry", "norm_registry")}
                if sum(live.values()) == 0:
                    break
        # ---- the index's memory, with nothing writing to it
        supervisor_stop.set()
        supervisor.join(5)
        for child in r.workers:
            platform.stop_child(child)
        r.index = measure_index(client, config.memory_sample, config.seed)
        client.close()
    except Exception as exc:
        log.exception("reach-back bench failed")
        error = f"{type(exc).__name__}: {exc}"
    finally:
        supervisor_stop.set()
        header["worker_restarts"] = {c.name: {"restarts": c.restarts, "last_exit": c.last_exit,
                                              "crashed_agents": c.crashed_agents} for c in getattr(r, "workers", [])}
        traffic_stop.set()
        if traffic is not None:
            traffic.join(30)
        gc.collect()  # the producers (reference cycles) go before the broker does
        platform.stop()
    summary = summarize(r.marks, getattr(r, "latency", None) and r.latency.points or [],
                        getattr(r, "latency", None) and r.latency.funds_alert_points or [],
                        r.samples, r.bulk, r.index, events_offered, config, error)
    restarts = {name: w for name, w in header.get("worker_restarts", {}).items() if w["restarts"]}
    if restarts:
        summary["worker_restarts"] = restarts
    summary["bulk"] = r.bulk
    summary["marks_ms"] = r.marks
    if r.samples and "traffic_start" in r.marks:
        summary["run_minutes"] = round((r.samples[-1]["t_ms"] - r.marks["traffic_start"]) / 60_000, 1)
        summary["retro_alerts_by_list_tier"] = dict(r.latency.retro)
    results = {"schema": "antifraud-bench-reach-back/1", "header": header, "summary": summary, "samples": r.samples,
               "points": getattr(r, "latency", None) and r.latency.points or [],
               "funds_alert_points": getattr(r, "latency", None) and r.latency.funds_alert_points or []}
    out.write_text(json.dumps(results, default=str) + "\n")
    if r.samples and "traffic_start" in r.marks:
        plot(r.samples, results["points"], r.marks, config.plot, summary)
    summary_path.write_text(markdown(summary, header, out, config.plot, summary_path))
    print(f"reach-back: results {out}; plot {config.plot}; summary {summary_path}", flush=True)
    for line in summary_lines(summary):
        print(f"reach-back: {line}", flush=True)
    if not config.keep_run_dir and config.run_dir is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return summary


# ----------------------------------------------------------------------------- CLI
def parse(argv: list[str] | None = None) -> ReachBackConfig:
    d = ReachBackConfig()
    p = argparse.ArgumentParser(prog="antifraud bench --reach-back", description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=d.entries, help=f"intel entries published at once (default {d.entries:,})")
    p.add_argument("--touched-share", type=float, default=d.touched_share,
                   help=f"share of them the contact index has contacts for (default {d.touched_share:g})")
    p.add_argument("--persons", type=int, default=d.persons, help=f"registry size (default {d.persons:,})")
    p.add_argument("--intel", type=int, default=d.intel, help=f"live intel entries seeded first (default {d.intel:,})")
    p.add_argument("--held-back-share", type=float, default=d.held_back_share,
                   help="share of the live exact-match entries published only with the list, after the stories touched them "
                        f"(default {d.held_back_share:g})")
    p.add_argument("--rate", type=float, default=d.rate, help=f"event mix messages/s for the whole run (default {d.rate:g})")
    p.add_argument("--build-min", type=float, default=d.build_min, help=f"minutes that fill the index (default {d.build_min:g})")
    p.add_argument("--baseline-min", type=float, default=d.baseline_min,
                   help=f"minutes of live traffic alone measured (default {d.baseline_min:g})")
    p.add_argument("--max-reach-back-min", type=float, default=d.max_reach_back_min,
                   help=f"longest wait for the reach-back to drain (default {d.max_reach_back_min:g})")
    p.add_argument("--publish-rate", type=float, default=None,
                   help="publish the entries at this rate (entries/s) instead of at once: what a paced intake would do")
    p.add_argument("--every-s", type=float, default=d.every_s, help=f"seconds between samples (default {d.every_s:g})")
    p.add_argument("--workers", type=int, default=None, help="stream worker processes (default ANTIFRAUD_WORKER_PROCESSES)")
    p.add_argument("--reach-back-rate", type=float, default=None,
                   help="re-checks per second per worker (default ANTIFRAUD_REACH_BACK_RATE, the platform's 200)")
    p.add_argument("--memory-sample", type=int, default=d.memory_sample, help="index keys whose MEMORY USAGE is read")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=None, help="JSON results (default bench-results/reach-back-<stamp>.json)")
    p.add_argument("--plot", type=Path, default=d.plot, help=f"PNG (default {d.plot})")
    p.add_argument("--summary", type=Path, default=None, help="markdown summary (default: --out with .md)")
    p.add_argument("--run-dir", type=Path, default=None, help="working directory (default: a fresh one, removed after)")
    p.add_argument("--keep-run-dir", action="store_true", help="keep logs and stores of the run")
    a = p.parse_args(argv)
    if a.entries < 1 or a.rate <= 0 or a.every_s <= 0 or a.build_min < 0 or a.baseline_min <= 0:
        p.error("--entries, --rate, --every-s and --baseline-min must be positive")
    if not 0 <= a.touched_share <= 1 or not 0 <= a.held_back_share < 1:
        p.error("--touched-share and --held-back-share are shares (0..1)")
    return ReachBackConfig(entries=a.entries, touched_share=a.touched_share, persons=a.persons, intel=a.intel,
                           held_back_share=a.held_back_share, rate=a.rate, build_min=a.build_min,
                           baseline_min=a.baseline_min, max_reach_back_min=a.max_reach_back_min, every_s=a.every_s,
                           publish_rate=a.publish_rate,
                           workers=a.workers, reach_back_rate=a.reach_back_rate, memory_sample=a.memory_sample,
                           seed=a.seed, out=a.out, plot=a.plot, summary=a.summary, run_dir=a.run_dir,
                           keep_run_dir=a.keep_run_dir)


def cli(argv: list[str] | None = None) -> int:
    """Exit 1 when the run could not be measured to the end; a missed target is reported, not failed."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    summary = run(parse(argv))
    return 1 if summary.get("error") or not summary.get("samples") else 0


if __name__ == "__main__":
    sys.exit(cli())
