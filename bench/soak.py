"""`antifraud bench --soak`: the whole platform for an hour, sampled once a minute (issue 12, part 5).

    antifraud bench --soak                                  # 60 minutes at 200 events/s, a sample a minute
    antifraud bench --soak --minutes 3 --every-s 20         # a short shake-out
    python -m bench.soak --help                             # the same, without the CLI

It runs what `antifraud up` runs (streams.supervisor.bring_up: embedded broker and Valkey,
stream workers, channel workers, partners, oversight, console, the simulator at `--rate`)
and every `--every-s` seconds records, as one JSON line (and one printed line):

- **rss_mb**: every process's resident memory (psutil; a process with children counts
  them too), the broker's java process under "broker";
- **broker_disk_mb**: what the broker's data directory takes on disk (allocated blocks);
- **lag**: per stage, what its consumer group has not committed yet: records (end offset
  minus committed offset, summed over its partitions) and **seconds** = the age of the
  oldest record not yet committed (now minus the broker timestamp of the record at the
  committed offset; the largest over its partitions; 0 when nothing is waiting). A stage
  is a stage of the Faust app group (`antifraud`, by the topics it consumes) or another
  consumer group (channel workers, ledger, audit, partners' banks and carriers). Faust
  commits every 2.8 s, so a stage that keeps up shows up to ~3 s: this measure is an
  upper bound of how far behind a stage is, never flattering;
- **latency_ms**: input produce -> first action for the actions that appeared since the
  last sample, the bench's own join (bench.latency.join_outputs: an input record's
  timestamp is its produce time, an action's is when route sent it; an action joins to
  its alert version, the alert to the latest of its evidence events).

At the end: a PNG plot of the curves (`--plot`, docs/img/soak.png) and a markdown summary
(`--summary`) that checks the issue's Done-when: broker RSS flat over the last 30 minutes
and under 1.5 GB, no stage more than 5 s behind at any sample.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

import streams.worker
from bench.config import PROJECT_ROOT, RESULTS_DIR
from bench.latency import input_times, join_outputs, stats
from bench.machine import machine_info, versions
from bench.stages import event_input_topics, furthest_level, stage_inputs
from streams.catalog import Catalog, get_catalog
from streams.settings import get_settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
PLOT_FILE = PROJECT_ROOT / "docs" / "img" / "soak.png"
# The Done-when.
BROKER_RSS_LIMIT_MB = 1536.0  # 1.5 GB (GiB: RSS is counted in MiB here, like the bench's)
LAG_LIMIT_S = 5.0
FLAT_WINDOW_MIN = 30.0
FLAT_TOLERANCE = 0.10  # "flat": the fitted trend over the window moves less than 10 % of its mean
# Inputs and alerts are remembered this long for the latency join: an action comes seconds
# after its event; a stage 15 minutes behind has failed the lag check long before.
JOIN_MEMORY_S = 15 * 60
OWN_GROUP_PREFIX = "antifraud-soak-"
# Groups that read but are not stages: the soak's and the bench's helpers, and the
# end-offset reader of streams.kafka and the embedded broker's readiness check (never commit).
IGNORED_GROUPS = (OWN_GROUP_PREFIX, "bench-", "antifraud-end-offsets", "antifraud-reader", "antifraud-readiness")


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 60.0
    every_s: float = 60.0
    rate: float = 200.0
    out: Path | None = None  # JSON lines; None: bench-results/soak-<stamp>.jsonl
    plot: Path = PLOT_FILE
    summary: Path | None = None  # markdown; None: next to `out`, .md
    run_dir: Path | None = None  # None: a fresh directory under the settings' run_dir, removed after
    keep_run_dir: bool = False


# ----------------------------------------------------------------------------- probes
def tree_rss_mb(pid: int) -> float | None:
    """RSS of a process and its descendants (a child that forks still counts as one)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return round(total / MB, 1)


def disk_mb(path: Path | None) -> float | None:
    """Allocated size of a directory tree (blocks, as `du` counts: sparse index files count as used)."""
    if path is None or not path.exists():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # a segment deleted by retention or compaction while we walk
    return round(total / MB, 1)


class Broker:
    """End offsets, consumer groups and record timestamps, asked of the broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def offsets(self, tps: list[tuple[str, int]], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        if not tps:
            return {}
        futures = self.admin.list_offsets({TopicPartition(t, p): spec for t, p in tps}, request_timeout=10)
        return {(tp.topic, tp.partition): f.result(15).offset for tp, f in futures.items()}

    def partitions(self, topics: list[str]) -> list[tuple[str, int]]:
        meta = self.admin.list_topics(timeout=10).topics
        return [(t, p) for t in topics if t in meta for p in meta[t].partitions]

    def groups(self) -> list[str]:
        listed = self.admin.list_consumer_groups(request_timeout=10).result(15)
        return sorted(g.group_id for g in listed.valid if not g.group_id.startswith(IGNORED_GROUPS))

    def committed(self, group: str) -> dict[tuple[str, int], int | None]:
        """Every partition the group has committed on or has a member assigned to; None: never committed."""
        found: dict[tuple[str, int], int | None] = {}
        [(_, future)] = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).items()
        for tp in future.result(15).topic_partitions or []:
            found[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        [(_, described)] = self.admin.describe_consumer_groups([group], request_timeout=10).items()
        for member in described.result(15).members:
            for tp in member.assignment.topic_partitions:
                found.setdefault((tp.topic, tp.partition), None)
        return found

    def timestamps_at(self, positions: dict[tuple[str, int], int], timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
        """The broker timestamp (ms) of the first record at or after each position."""
        if not positions:
            return {}
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{OWN_GROUP_PREFIX}{uuid.uuid4()}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 50, "log_level": 3})
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in positions.items()])
        found: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout_s
        try:
            while len(found) < len(positions) and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=500, timeout=0.5):
                    if msg.error() is None:
                        found.setdefault((msg.topic(), msg.partition()), msg.timestamp()[1])
                        # One record per partition is all we need: stop reading that one.
                        consumer.pause([TopicPartition(msg.topic(), msg.partition())])
        finally:
            consumer.close()
        return found


def stage_labels(catalog: Catalog, stages: tuple[str, ...]) -> dict[str, str]:
    """Topic name -> the Faust stage(s) that consume it (one group commit covers them all)."""
    by_topic: dict[str, list[str]] = {}
    for stage in stages:
        for topic in stage_inputs(catalog, stage):
            by_topic.setdefault(topic, []).append(stage)
    return {topic: "+".join(names) for topic, names in by_topic.items()}


def measure_lag(broker: Broker, catalog: Catalog, labels: dict[str, str],
                channel_inputs: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """Per stage: records not yet committed and the age (s) of the oldest of them.

    `labels`: the stream stages' input topics; `channel_inputs`: channel worker (label) -> its
    topics. Those are counted from the start, before their group has joined or committed.
    """
    internal = {t.name for t in catalog.topics.values() if t.kind in ("changelog", "faust")}
    positions: dict[tuple[str, str, int], tuple[str, int | None]] = {}  # (group, topic, partition) -> (stage, committed)
    for group in broker.groups():
        for (topic, partition), committed in broker.committed(group).items():
            if topic in internal or topic.endswith("-__assignor-__leader"):
                continue  # Faust's own topics: read by assignment, never committed as progress
            if group == catalog.app_id:
                label = labels.get(topic, f"{group}:{topic}")
            else:
                label = group.removeprefix(f"{catalog.app_id}-")
            positions[(group, topic, partition)] = (label, committed)
    # Stages and channel workers before their group has joined or committed: everything on their inputs waits.
    expected = {topic: [(catalog.app_id, label)] for topic, label in labels.items()}
    for label, topics in (channel_inputs or {}).items():
        for topic in topics:
            expected.setdefault(topic, []).append((f"{catalog.app_id}-{label}", label))
    for topic, partition in broker.partitions(sorted(expected)):  # one metadata request for them all
        for group, label in expected[topic]:
            positions.setdefault((group, topic, partition), (label, None))
    tps = sorted({(t, p) for _, t, p in positions})
    ends = broker.offsets(tps, OffsetSpec.latest())
    starts = broker.offsets(sorted({(t, p) for (_, t, p), (_, c) in positions.items() if c is None}),
                            OffsetSpec.earliest())
    waiting: dict[tuple[str, str, int], int] = {}
    for key, (_, committed) in positions.items():
        position = committed if committed is not None else starts.get(key[1:], 0)  # auto.offset.reset=earliest
        if ends.get(key[1:], 0) > position:
            waiting[key] = position
    # Several groups may wait on one partition (route and the ledger both read alerts): one
    # read per round can ask a partition for one position only.
    stamps: dict[tuple[str, int, int], int] = {}  # (topic, partition, position) -> timestamp ms
    pending = sorted({(key[1], key[2], pos) for key, pos in waiting.items()})
    while pending:
        this_round: dict[tuple[str, int], int] = {}
        for topic, partition, pos in pending:
            this_round.setdefault((topic, partition), pos)
        for tp, ts in broker.timestamps_at(this_round).items():
            stamps[(*tp, this_round[tp])] = ts
        pending = [x for x in pending if this_round.get(x[:2]) != x[2]]
    now_ms = time.time() * 1000
    out: dict[str, dict] = {}
    for key, (label, _) in positions.items():
        entry = out.setdefault(label, {"records": 0, "age_s": 0.0, "partitions": 0})
        entry["partitions"] += 1
        if key in waiting:
            entry["records"] += ends[key[1:]] - waiting[key]
            ts = stamps.get((key[1], key[2], waiting[key]))
            if ts is not None:  # None: only transaction markers or compacted-away records wait
                entry["age_s"] = round(max(entry["age_s"], (now_ms - ts) / 1000), 2)
    return dict(sorted(out.items()))


class LatencyProbe:
    """Input produce -> first action, for the actions written since the last call."""

    def __init__(self, broker: Broker, catalog: Catalog, stages: tuple[str, ...]) -> None:
        self.broker = broker
        self.level, self.out_topics = furthest_level(catalog, stages)
        self.inputs = event_input_topics(catalog)
        self.alerts = [catalog.topic("alerts").name] if self.level == "actions" else []
        self.tps = broker.partitions(self.inputs + self.out_topics + self.alerts)
        self.last: dict[tuple[str, int], int] = {}  # from the topics' start: everything the soak offered
        self.produced_at: dict[str, int] = {}
        self.triggers: dict[tuple[str, int], tuple[int, str]] = {}
        self.all_ms: list[float] = []
        self.inputs_read = 0

    def sample(self) -> dict:
        ends = self.broker.offsets(self.tps, OffsetSpec.latest())
        ranges = {tp: (self.last.get(tp, 0), end) for tp, end in ends.items() if end > self.last.get(tp, 0)}
        self.last.update(ends)
        fresh = input_times(self.broker.bootstrap, {tp: r for tp, r in ranges.items() if tp[0] in self.inputs})
        self.inputs_read += len(fresh)
        self.produced_at.update(fresh)
        samples = join_outputs(self.broker.bootstrap, self.level, ranges, self.produced_at, self.out_topics,
                               self.alerts, self.triggers)
        self._forget(time.time() * 1000 - JOIN_MEMORY_S * 1000)
        values = [ms for _, ms, _ in samples]
        self.all_ms += values
        out = stats(values)
        out["funds_warning_p99_ms"] = stats([ms for tier, ms, _ in samples if tier == "funds_warning"])["p99_ms"]
        return out

    def _forget(self, before_ms: float) -> None:
        self.produced_at = {k: ts for k, ts in self.produced_at.items() if ts >= before_ms}
        self.triggers = {k: v for k, v in self.triggers.items() if v[0] >= before_ms}


# ----------------------------------------------------------------------------- the run
def run(config: SoakConfig) -> dict:
    """Bring the platform up, sample until the time is up (or SIGINT/SIGTERM), write results, plot and summary."""
    from streams.supervisor import bring_up

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = config.out or RESULTS_DIR / f"soak-{stamp}.jsonl"
    summary_path = config.summary or out.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    run_dir = config.run_dir or settings.run_dir / "soak" / stamp
    settings = settings.model_copy(update={"run_dir": run_dir})
    # The simulator child reads its rate from the environment (Platform.child_env copies it).
    os.environ["ANTIFRAUD_SIMULATOR_RATE"] = str(config.rate)
    # The simulated gateway answers each channel's actions one at a time, a visit in 2-6 s: at
    # 200 events/s the police-visit worker would fall minutes behind modelling one officer, not
    # the platform (a real desk works visits in parallel, off the consumer's path). Compressed tenfold.
    os.environ.setdefault("ANTIFRAUD_GATEWAY_SIMULATED_TIME_SCALE", "0.1")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    samples: list[dict] = []
    header = {"type": "start", "started_at": _now(), "config": {**asdict(config), "out": str(out),
              "plot": str(config.plot), "summary": str(summary_path), "run_dir": str(run_dir)},
              "machine": machine_info()}
    platform = probe = broker = None
    error = None
    with out.open("w") as sink:
        try:
            platform = bring_up(settings, with_simulator=True)
            settings = platform.settings
            header["versions"] = versions(settings.redis_url)
            _write(sink, header)
            catalog = get_catalog(settings.topics_file)
            stages = tuple(streams.worker.STAGES)
            broker = Broker(settings.kafka_bootstrap_servers)
            probe = LatencyProbe(broker, catalog, stages)
            labels = stage_labels(catalog, stages)
            data_dir = next((getattr(s, "data_dir", None) for s in platform.servers if s.name == "broker"), None)
            print(f"soak: {config.minutes:g} min at {config.rate:g} events/s, a sample every {config.every_s:g} s; "
                  f"results {out}; run dir {run_dir}", flush=True)
            started = time.monotonic()
            end = started + config.minutes * 60
            next_at = started + config.every_s
            while not stop.wait(max(0.0, min(next_at, end) - time.monotonic())):
                try:
                    sample = take_sample(platform, broker, catalog, labels, probe, data_dir, started)
                except KafkaException as exc:  # a passing broker answer (a leader not elected yet): the next sample asks again
                    print(f"soak: a sample was skipped: {exc}", flush=True)
                else:
                    samples.append(sample)
                    _write(sink, sample)
                    print(sample_line(sample), flush=True)
                if time.monotonic() >= end - 1:
                    break
                next_at += config.every_s
            dead = [c.name for c in platform.children if c.process and c.process.poll() is not None]
            if dead:
                error = f"processes exited during the soak: {', '.join(dead)} (logs in {run_dir / 'logs'})"
        except Exception as exc:  # what was sampled is still summarized
            log.exception("soak failed")
            error = f"{type(exc).__name__}: {exc}"
        finally:
            all_ms = probe.all_ms if probe is not None else []
            # librdkafka clients retry a vanished broker and log every attempt: gone before it is.
            probe = broker = None
            gc.collect()
            if platform is not None:
                platform.stop()
        summary = summarize(samples, config, header, error)
        summary["all_latency"] = stats(all_ms)
        _write(sink, summary)
    if samples:
        plot(samples, config.plot, summary)
    summary_path.write_text(markdown(summary, header, out, config.plot, summary_path))
    print(f"soak: {len(samples)} samples in {out}; plot {config.plot}; summary {summary_path}", flush=True)
    for line in summary_lines(summary):
        print(f"soak: {line}", flush=True)
    if not config.keep_run_dir and config.run_dir is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return summary


def take_sample(platform, broker: Broker, catalog: Catalog, labels: dict[str, str], latency: LatencyProbe,
                data_dir: Path | None, started: float) -> dict:
    rss = {}
    for server in platform.servers:
        if server.process is not None:
            rss[server.name] = tree_rss_mb(server.process.pid)
    for child in platform.children:
        if child.process is not None:
            rss[child.name] = tree_rss_mb(child.process.pid)
    rss["soak"] = round(psutil.Process().memory_info().rss / MB, 1)  # itself only: its children are listed above
    inputs_before = latency.inputs_read
    channels = [child.name.removeprefix("ch-") for child in platform.children if child.name.startswith("ch-")]
    lag = measure_lag(broker, catalog, labels,
                      {f"channel-{name}": [catalog.topic(f"actions_{name}").name] for name in channels})
    lat = latency.sample()
    elapsed = time.monotonic() - started
    worst = max(lag.items(), key=lambda kv: kv[1]["age_s"], default=(None, {"age_s": 0.0}))
    return {
        "type": "sample", "t": _now(), "elapsed_s": round(elapsed, 1), "minute": round(elapsed / 60, 2),
        "rss_mb": {k: v for k, v in rss.items() if v is not None},
        "broker_disk_mb": disk_mb(data_dir),
        "lag": lag, "max_lag_s": worst[1]["age_s"], "max_lag_stage": worst[0],
        "latency_ms": lat,
        "inputs": latency.inputs_read - inputs_before,  # event-mix records offered since the last sample
    }


def sample_line(s: dict) -> str:
    rss = s["rss_mb"]
    workers = "+".join(f"{rss[k]:.0f}" for k in sorted(rss) if k.startswith("worker"))
    lat = s["latency_ms"]
    return (f"[{s['minute']:6.2f} min] broker {rss.get('broker', 0):,.0f} MB, disk {s['broker_disk_mb'] or 0:,.0f} MB, "
            f"worker {workers} MB, all {sum(rss.values()):,.0f} MB; lag max {s['max_lag_s']:.1f} s "
            f"({s['max_lag_stage']}); latency p50 {lat['p50_ms']} p99 {lat['p99_ms']} ms over {lat['count']} actions; "
            f"{s['inputs']:,} inputs")


# ----------------------------------------------------------------------------- summary
def summarize(samples: list[dict], config: SoakConfig, header: dict, error: str | None) -> dict:
    summary = {"type": "summary", "finished_at": _now(), "samples": len(samples), "error": error}
    if not samples:
        summary["checks"] = {}
        return summary
    total_min = samples[-1]["minute"]
    # The last 30 minutes; a shorter run looks at its second half (and says so).
    window_min = FLAT_WINDOW_MIN if total_min >= FLAT_WINDOW_MIN + 5 else total_min / 2
    window = [s for s in samples if s["minute"] >= total_min - window_min]
    broker = [(s["minute"], s["rss_mb"]["broker"]) for s in window if "broker" in s["rss_mb"]]
    checks = {}
    if len(broker) >= 2:
        slope = _slope(broker)  # MB per minute
        mean = sum(v for _, v in broker) / len(broker)
        trend = slope * (broker[-1][0] - broker[0][0])
        peak = max(s["rss_mb"].get("broker", 0) for s in samples)
        checks["broker_rss_flat"] = {
            "ok": abs(trend) <= FLAT_TOLERANCE * mean, "window_min": round(window_min, 1),
            "trend_mb": round(trend, 1), "mean_mb": round(mean, 1), "first_mb": broker[0][1], "last_mb": broker[-1][1],
            "rule": f"least-squares trend over the last {window_min:.0f} min within {FLAT_TOLERANCE:.0%} of the mean",
        }
        checks["broker_rss_under_limit"] = {"ok": peak < BROKER_RSS_LIMIT_MB, "peak_mb": peak,
                                            "limit_mb": BROKER_RSS_LIMIT_MB}
    worst = max(samples, key=lambda s: s["max_lag_s"])
    after_start = [s for s in samples if s["minute"] > 1.0] or samples
    worst_after = max(after_start, key=lambda s: s["max_lag_s"])
    checks["lag_under_limit"] = {
        "ok": worst["max_lag_s"] <= LAG_LIMIT_S, "limit_s": LAG_LIMIT_S, "worst_s": worst["max_lag_s"],
        "worst_stage": worst["max_lag_stage"], "worst_at_min": worst["minute"],
        "worst_after_first_minute_s": worst_after["max_lag_s"],
        "samples_over": sum(1 for s in samples if s["max_lag_s"] > LAG_LIMIT_S),
    }
    summary["checks"] = checks
    summary["short_run"] = total_min < FLAT_WINDOW_MIN + 5
    summary["minutes"] = total_min
    summary["rss_mb"] = {name: {"first": samples[0]["rss_mb"].get(name), "last": samples[-1]["rss_mb"].get(name),
                                "max": max(s["rss_mb"].get(name, 0) for s in samples)}
                         for name in samples[-1]["rss_mb"]}
    summary["broker_disk_mb"] = {"first": samples[0]["broker_disk_mb"], "last": samples[-1]["broker_disk_mb"],
                                 "max": max(s["broker_disk_mb"] or 0 for s in samples)}
    stages = sorted({name for s in samples for name in s["lag"]})
    summary["lag"] = {name: {"max_s": max(s["lag"].get(name, {}).get("age_s", 0) for s in samples),
                             "max_records": max(s["lag"].get(name, {}).get("records", 0) for s in samples)}
                      for name in stages}
    per_min = [s["latency_ms"] for s in samples if s["latency_ms"]["count"]]
    summary["latency_per_sample"] = {
        "p50_ms_range": [min(x["p50_ms"] for x in per_min), max(x["p50_ms"] for x in per_min)] if per_min else None,
        "p99_ms_range": [min(x["p99_ms"] for x in per_min), max(x["p99_ms"] for x in per_min)] if per_min else None,
    }
    summary["input_rate"] = round(sum(s["inputs"] for s in samples) / max(samples[-1]["elapsed_s"], 1e-9), 1)
    summary["ok"] = error is None and all(c["ok"] for c in checks.values())
    return summary


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def check_rows(summary: dict) -> list[tuple[str, bool | None, str]]:
    """(what, met?, figures) per Done-when check and for the latency; None = not a check. One wording for both outputs."""
    c, rows = summary.get("checks", {}), []
    if "broker_rss_flat" in c:
        f, u = c["broker_rss_flat"], c["broker_rss_under_limit"]
        rows.append((f"broker RSS flat over the last {f['window_min']:g} min", f["ok"],
                     f"trend {f['trend_mb']:+,.0f} MB on a mean of {f['mean_mb']:,.0f} MB "
                     f"({f['first_mb']:,.0f} -> {f['last_mb']:,.0f} MB)"))
        rows.append((f"broker RSS under {u['limit_mb']:,.0f} MB", u["ok"], f"peak {u['peak_mb']:,.0f} MB"))
    if "lag_under_limit" in c:
        lag = c["lag_under_limit"]
        rows.append((f"no stage more than {lag['limit_s']:g} s behind at any sample", lag["ok"],
                     f"worst {lag['worst_s']:.1f} s ({lag['worst_stage']}, minute {lag['worst_at_min']:.1f}); "
                     f"{lag['samples_over']} sample(s) over; after the first minute "
                     f"{lag['worst_after_first_minute_s']:.1f} s"))
    a = summary.get("all_latency") or {}
    if a.get("count"):
        rows.append(("input -> first action (not a Done-when)", None,
                     f"p50 {a['p50_ms']:,.0f} ms, p99 {a['p99_ms']:,.0f} ms, max {a['max_ms']:,.0f} ms "
                     f"over {a['count']:,} actions"))
    return rows


def plot_link(plot_path: Path, summary_path: Path) -> str:
    """The plot's path as a summary links it: summaries are meant for docs/performance.md, so a plot
    under docs/ is linked from there, any other from the summary's own folder."""
    docs = PROJECT_ROOT / "docs"
    base = docs if plot_path.resolve().is_relative_to(docs) else summary_path.parent.resolve()
    return os.path.relpath(plot_path.resolve(), base)


def check_lines(rows: list[tuple[str, bool | None, str]]) -> list[str]:
    """One printed line per checked target: what, met (yes / NO / nothing when only reported), the figures."""
    return [f"{what}: {'' if met is None else ('yes' if met else 'NO') + ' '}({figures})" for what, met, figures in rows]


def summary_lines(summary: dict) -> list[str]:
    lines = check_lines(check_rows(summary))
    if summary.get("short_run"):
        lines.append("short run: 'flat' is judged on its second half, not on 30 minutes")
    if summary.get("error"):
        lines.append(f"error: {summary['error']}")
    return lines


def markdown(summary: dict, header: dict, out: Path, plot_path: Path, summary_path: Path) -> str:
    cfg, m, v = header["config"], header["machine"], header.get("versions", {})
    image = plot_link(plot_path, summary_path)
    lines = [
        f"### Soak: {cfg['rate']:g} events/s for {cfg['minutes']:g} minutes",
        "",
        f"Generated by `antifraud bench --soak` ({header['started_at']} .. {summary['finished_at']}; "
        f"{summary.get('minutes', 0):.1f} minutes sampled, {summary['samples']} samples every {cfg['every_s']:g} s; "
        f"{m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB; Kafka {v.get('kafka', '?')}; "
        f"measured input rate {summary.get('input_rate', 0):,.0f} events/s; results `{out.name}`).",
        "",
        f"![soak curves]({image})",
        "",
        "| Done when | result |",
        "| --- | --- |",
    ]
    verdict = {True: "**met**: ", False: "**not met**: ", None: ""}
    lines += [f"| {what} | {verdict[met]}{figures} |" for what, met, figures in check_rows(summary)]
    if summary.get("error"):
        lines.append(f"| error | {summary['error']} |")
    lines += ["", "| process | RSS MB first | last | max |", "| --- | ---: | ---: | ---: |"]
    for name, r in sorted((summary.get("rss_mb") or {}).items()):
        lines.append(f"| {name} | {_n(r['first'])} | {_n(r['last'])} | {_n(r['max'])} |")
    d = summary.get("broker_disk_mb")
    if d:
        lines.append(f"| broker data dir (disk) | {_n(d['first'])} | {_n(d['last'])} | {_n(d['max'])} |")
    lines += ["", "| stage (consumer group) | max lag s | max lag records |", "| --- | ---: | ---: |"]
    for name, r in (summary.get("lag") or {}).items():
        lines.append(f"| {name} | {r['max_s']:.1f} | {r['max_records']:,} |")
    if summary.get("short_run"):
        lines += ["", "A short run: 'flat' is judged on its second half, not on 30 minutes."]
    return "\n".join(lines) + "\n"


def _n(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


# ----------------------------------------------------------------------------- plot
def plot(samples: list[dict], path: Path, summary: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    minutes = [s["minute"] for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharex=True)
    ax = axes[0][0]
    names = sorted({n for s in samples for n in s["rss_mb"]}, key=lambda n: -max(s["rss_mb"].get(n, 0) for s in samples))
    for name in names:
        ax.plot(minutes, [s["rss_mb"].get(name) for s in samples], label=name,
                linewidth=2.2 if name == "broker" else 1.0)
    ax.axhline(BROKER_RSS_LIMIT_MB, color="red", linestyle=":", linewidth=1, label="broker limit 1.5 GB")
    ax.set_title("RSS per process (MB)")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[0][1]
    ax.plot(minutes, [s["broker_disk_mb"] for s in samples], color="tab:brown")
    ax.set_title("broker data directory on disk (MB)")
    ax.set_ylim(bottom=0)
    ax = axes[1][0]
    stages = sorted({n for s in samples for n in s["lag"]})
    for name in stages:
        ax.plot(minutes, [s["lag"].get(name, {}).get("age_s", 0) for s in samples], label=name, linewidth=1)
    ax.axhline(LAG_LIMIT_S, color="red", linestyle=":", linewidth=1, label="5 s")
    ax.set_title("lag per stage: age of the oldest uncommitted record (s)")
    ax.set_xlabel("minutes")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1][1]
    for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
        ax.plot(minutes, [s["latency_ms"][key] for s in samples], style, label=key.replace("_ms", ""))
    ax.set_yscale("log")
    ax.set_title("input -> first action latency per sample (ms)")
    ax.set_xlabel("minutes")
    ax.legend(fontsize=8)
    verdict = "Done-when met" if summary.get("ok") else "Done-when NOT met"
    fig.suptitle(f"soak: {samples[-1]['minute']:.0f} min; {verdict}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- CLI
def _write(sink, record: dict) -> None:
    sink.write(json.dumps(record, default=str) + "\n")
    sink.flush()  # progress is visible in the file as it goes


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse(argv: list[str] | None = None) -> SoakConfig:
    d = SoakConfig()
    env_rate = os.environ.get("ANTIFRAUD_SIMULATOR_RATE")
    p = argparse.ArgumentParser(prog="antifraud bench --soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=d.minutes, help=f"how long (default {d.minutes:g})")
    p.add_argument("--every-s", type=float, default=d.every_s, help=f"seconds between samples (default {d.every_s:g})")
    p.add_argument("--rate", type=float, default=float(env_rate) if env_rate else d.rate,
                   help=f"simulator events/s (default ANTIFRAUD_SIMULATOR_RATE, else {d.rate:g})")
    p.add_argument("--out", type=Path, default=None, help="JSON lines file (default bench-results/soak-<stamp>.jsonl)")
    p.add_argument("--plot", type=Path, default=d.plot, help=f"PNG of the curves (default {d.plot})")
    p.add_argument("--summary", type=Path, default=None, help="markdown summary (default: --out with .md)")
    p.add_argument("--run-dir", type=Path, default=None, help="working directory (default: a fresh one, removed after)")
    p.add_argument("--keep-run-dir", action="store_true", help="keep logs and stores of the run")
    a = p.parse_args(argv)
    if a.minutes <= 0 or a.every_s <= 0 or a.rate <= 0:
        p.error("--minutes, --every-s and --rate must be positive")
    return SoakConfig(minutes=a.minutes, every_s=a.every_s, rate=a.rate, out=a.out, plot=a.plot, summary=a.summary,
                      run_dir=a.run_dir, keep_run_dir=a.keep_run_dir)


def cli(argv: list[str] | None = None) -> int:
    """Exit code 1 when the soak could not run to the end (a process died, an error); missed targets are reported, not failed."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    summary = run(parse(argv))
    return 1 if summary.get("error") or not summary.get("samples") else 0


if __name__ == "__main__":
    sys.exit(cli())
