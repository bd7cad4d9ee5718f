"""The fault suite: the real platform, a steady load, faults at random points, and the figures.

    antifraud faults                       # default size: 20 worker kills, 1 channel kill, Valkey and broker restarts
    antifraud faults --worker-kills 3      # a smaller run (the pytest marker `faults` runs one of these)
    python -m faults --help                # the same, without the CLI

Faults (seeded: `--seed` repeats a run's choices and timings):
- **worker_kill**: kill -9 of a random stream worker (two run, in one consumer group), at a
  random moment of the load; the killed child is started again through the Platform API at
  once, unless the supervisor's own restart already did (streams.supervisor.restart_exited);
- **channel_kill**: kill -9 of a channel worker while it has an action in flight (a claim in
  state `sending` owned by that process, docs/channels.md), then started again;
- **valkey_restart**: the embedded Valkey stopped and started on the same port and AOF data;
- **broker_restart**: the embedded Kafka broker stopped and started on the same run directory
  (same data, same ports).

After each fault the suite waits until the pipeline has caught up: every stage (consumer
group, and per Faust stage for the app's group) has committed everything that was on its
input topics when the fault was injected, and its lag is back to its level just before the
fault. That moment minus the injection is the fault's *time to recover*. Lag and throughput
are sampled every second from the broker (committed vs end offsets), never from the
processes under test.

At the end the load stops, the pipeline drains, and the oracle (faults.load.judge) reads
what is on the broker: funds warnings lost or raised twice, alerts raised twice, citizens
contacted twice, bank requests lost or duplicated. Figures go to JSON and markdown, the
plot to docs/img/faults.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.config import PROJECT_ROOT, RESULTS_DIR
from bench.soak import IGNORED_GROUPS as TOOL_GROUPS
from bench.soak import stage_labels
from faults.load import OWN_GROUP_PREFIX, Load, Observer, judge
from faults.log_digest import digest, log_marks
from streams.catalog import Catalog, get_catalog
from streams.settings import get_settings
from streams.worker import STAGES

log = logging.getLogger(__name__)

PLOT_FILE = PROJECT_ROOT / "docs" / "img" / "faults.png"
IGNORED_GROUPS = (OWN_GROUP_PREFIX, *TOOL_GROUPS)  # groups that read but are no stage: this suite's and the tools'
# The children's environment for the run (copied into each child at spawn):
CHILD_ENV = {
    # Police visits take 0.4-1.2 s instead of 2-6 s: funds warnings (one visit each) are carried
    # out faster than they arrive, and a visit is still long enough to be caught in flight.
    "ANTIFRAUD_GATEWAY_SIMULATED_TIME_SCALE": "0.2",
    # A send interrupted by the kill is declared failed once its claim is older than this; the
    # default (120 s) is sized for webhook timeouts, the simulated gateway answers in ~1 s.
    "ANTIFRAUD_CHANNEL_SEND_LEASE_S": "15",
    # No quiet hours: the run behaves the same at any time of day (held actions are not lost,
    # but they would leave the channels idle at night).
    "ANTIFRAUD_CHANNEL_QUIET_HOURS": "",
}


@dataclass(frozen=True)
class FaultConfig:
    worker_kills: int = 20
    channel_kills: int = 1
    valkey_restarts: int = 1
    broker_restarts: int = 1
    seed: int = 17
    rate: float = 40.0  # mixed-load messages per second
    funds_every_s: float = 2.0  # a transfer to a listed mule account this often
    other_every_s: float = 3.0  # another fraud signal this often
    persons: int = 2_000
    warmup_s: float = 20.0
    gap_s: tuple[float, float] = (2.0, 10.0)  # after a recovery, the next fault comes this much later
    down_s: tuple[float, float] = (2.0, 6.0)  # how long Valkey or the broker stays down
    recover_timeout_s: float = 150.0
    drain_timeout_s: float = 180.0
    sample_s: float = 1.0
    run_dir: Path | None = None  # None: a fresh directory under the settings' run_dir, removed afterwards
    keep_run_dir: bool = False
    out: Path | None = None  # JSON figures; None: bench-results/faults-<stamp>.json (markdown beside it)
    plot: Path = PLOT_FILE


# ------------------------------------------------------------------------------ lag
class LagSampler:
    """Once a second: per stage, records on its inputs not yet committed, and committed totals (throughput)."""

    def __init__(self, bootstrap: str, catalog: Catalog) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        self.catalog = catalog
        # Held while measuring; the driver holds it across a broker restart: librdkafka's admin
        # requests that time out while the broker is gone have been seen to abort the process
        # (assertion in rd_kafka_enq_once_del_source_return), so none is in flight then.
        self.busy = threading.Lock()
        self.internal = {t.name for t in catalog.topics.values() if t.kind in ("changelog", "faust")}
        self.inputs = sorted(t.name for t in catalog.topics.values() if t.kind == "input")
        self.labels = stage_labels(catalog, STAGES)
        self.samples: list[dict] = []
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.partitions: dict[str, int] = {}

    def start(self, every_s: float) -> None:
        def loop() -> None:
            while not self.stop.wait(max(0.0, every_s - (time.monotonic() - self.started) % every_s)):
                with self.busy:
                    sample = self.measure()
                with self.lock:
                    self.samples.append(sample)

        self.thread = threading.Thread(target=loop, name="faults-lag", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(15)

    @contextlib.contextmanager
    def paused(self):
        """No admin request while the broker is down; a new client afterwards."""
        with self.busy:
            with self.lock:
                self.samples.append({"t": round(time.monotonic() - self.started, 2), "error": "broker down"})
            yield
            self.admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def snapshot(self) -> dict:
        """Committed and end offsets now (not the last sample's): what a fault interrupts."""
        for _ in range(10):
            try:
                with self.busy:
                    committed, ends = self.positions()
                return {"committed": committed, "ends": ends}
            except Exception:
                time.sleep(0.5)
        return {}

    def ends_now(self, topics: list[str]) -> dict:
        tps = [TopicPartition(t, p) for t in topics for p in range(self.catalog.topics[self._id(t)].partitions)]
        with self.busy:
            found = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=5)
            return {(tp.topic, tp.partition): f.result(7).offset for tp, f in found.items()}

    def _id(self, name: str) -> str:
        return next(tid for tid, spec in self.catalog.topics.items() if spec.name == name)

    def group_stable(self, group: str, members: int) -> bool:
        """The group finished rebalancing with the expected number of members (a dead one has left)."""
        try:
            with self.busy:
                [(_, future)] = self.admin.describe_consumer_groups([group], request_timeout=5).items()
                described = future.result(7)
        except Exception:
            return False
        return described.state.name == "STABLE" and len(described.members) == members

    def label(self, group: str, topic: str) -> str:
        if group == self.catalog.app_id:
            return self.labels.get(topic, topic)
        return group.removeprefix(f"{self.catalog.app_id}-")

    def positions(self, timeout: float = 5.0) -> tuple[dict, dict]:
        """({(group, topic, partition): committed}, {(topic, partition): end}) as the broker has them."""
        listed = self.admin.list_consumer_groups(request_timeout=timeout).result(timeout + 2)
        groups = sorted(g.group_id for g in listed.valid if not g.group_id.startswith(IGNORED_GROUPS))
        futures = {g: f for g in groups for _, f in
                   self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)],
                                                          request_timeout=timeout).items()}
        committed = {}
        for group, future in futures.items():
            for tp in future.result(timeout + 2).topic_partitions or []:
                if tp.topic in self.internal or tp.topic.endswith("-__assignor-__leader"):
                    continue  # Faust's own topics are read by assignment, never committed as progress
                committed[(group, tp.topic, tp.partition)] = max(tp.offset, 0)
        tps = sorted({(t, p) for _, t, p in committed} | set(self._input_tps(timeout)))
        ends = {}
        if tps:
            found = self.admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in tps},
                                            request_timeout=timeout)
            ends = {(tp.topic, tp.partition): f.result(timeout + 2).offset for tp, f in found.items()}
        return committed, ends

    def _input_tps(self, timeout: float) -> list[tuple[str, int]]:
        if not self.partitions:
            meta = self.admin.list_topics(timeout=timeout).topics
            self.partitions = {t: len(meta[t].partitions) for t in self.inputs if t in meta}
        return [(t, p) for t, n in self.partitions.items() for p in range(n)]

    def measure(self) -> dict:
        t = round(time.monotonic() - self.started, 2)
        try:
            committed, ends = self.positions()
        except Exception as exc:  # the broker is down (a fault): a gap in the curves, not an error
            return {"t": t, "error": type(exc).__name__}
        lag: dict[str, int] = {}
        done: dict[str, int] = {}
        for (group, topic, partition), offset in committed.items():
            label = self.label(group, topic)
            lag[label] = lag.get(label, 0) + max(0, ends.get((topic, partition), offset) - offset)
            done[label] = done.get(label, 0) + offset
        offered = sum(v for (topic, _), v in ends.items() if topic in self.inputs)
        return {"t": t, "lag": lag, "done": done, "offered": offered, "committed": committed, "ends": ends}

    def last(self, n: int = 1) -> list[dict]:
        with self.lock:
            return [s for s in self.samples[-n:]]

    def since(self, t: float) -> list[dict]:
        with self.lock:
            return [s for s in self.samples if s["t"] >= t]


# ------------------------------------------------------------------------------ faults
@dataclass
class Fault:
    n: int
    kind: str
    target: str
    at_s: float  # seconds since the suite's clock started
    detail: str = ""
    back_at_s: float | None = None  # the killed or stopped part was running again
    recovered_at_s: float | None = None
    recover_s: float | None = None
    peak_lag: int = 0  # largest total lag while recovering
    restarted_by: str = ""
    behind: str = ""  # when not recovered: what still held it back at the deadline


def restart_child(platform, child, wait_s: float = 2.0) -> str:
    """Start a killed child again, unless the supervisor already did; returns who restarted it.

    Works with and without automatic restarts in the supervisor: under the platform's lock (the
    supervisor takes it too) a child whose process runs again is left alone.
    """
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:  # the supervisor's first back-off step is 1 s
        if child.process is not None and child.process.poll() is None:
            return "supervisor"
        time.sleep(0.1)
    lock = getattr(platform, "_lock", None) or contextlib.nullcontext()
    with lock:
        if child.process is not None and child.process.poll() is None:
            return "supervisor"
        if hasattr(child, "restart_at"):
            child.restart_at = None
        child.restarts = getattr(child, "restarts", 0) + 1
        platform._start(child)
    return "suite"


def kill9(child) -> int:
    pid = child.process.pid
    os.kill(pid, signal.SIGKILL)
    child.process.wait(30)
    return pid


def find_sending(valkey_url: str, children: list, timeout_s: float = 60.0, prefer: str = "ch-police_visit"):
    """(child, claim) of a channel worker with an action in flight, or (None, None) after the timeout.

    Police visits are preferred for the first half of the wait: the longest sends, so the kill
    lands inside one rather than just after it.
    """
    import redis

    by_pid = {c.process.pid: c for c in children if c.process is not None and c.process.poll() is None}
    client = redis.Redis.from_url(valkey_url, socket_timeout=2)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            for key in client.scan_iter(match="claim:*", count=5000):
                raw = client.get(key)
                if raw and b'"sending"' in raw:
                    pid = int(json.loads(raw)["owner"].split(":")[1])
                    child = by_pid.get(pid)
                    if child is not None and (child.name == prefer or time.monotonic() - started > timeout_s / 2):
                        return child, key.decode()
            time.sleep(0.02)
    finally:
        client.close()
    return None, None


def claim_state(valkey_url: str, claim: str) -> str:
    import redis

    client = redis.Redis.from_url(valkey_url, socket_timeout=2)
    try:
        raw = client.get(claim)
    finally:
        client.close()
    return json.loads(raw)["state"] if raw else "gone"


class Driver:
    def __init__(self, config: FaultConfig, platform, sampler: LagSampler, rng: random.Random) -> None:
        self.config, self.platform, self.sampler, self.rng = config, platform, sampler, rng
        self.faults: list[Fault] = []
        self.before: dict = {}
        self.workers = sum(1 for c in platform.children if c.name.startswith("worker-"))

    def now(self) -> float:
        return round(time.monotonic() - self.sampler.started, 2)

    def server(self, name: str):
        return next(s for s in self.platform.servers if s.name == name)

    def inject(self, n: int, kind: str) -> Fault:
        p = self.platform
        if kind == "worker_kill":
            workers = [c for c in p.children if c.name.startswith("worker-")]
            child = self.rng.choice(workers)
            fault = Fault(n, kind, child.name, self.now())
            pid = kill9(child)
            fault.detail = f"pid {pid}"
            fault.restarted_by = restart_child(p, child)
        elif kind == "channel_kill":
            channels = [c for c in p.children if c.name.startswith("ch-")]
            child, claim = find_sending(p.settings.redis_url, channels)
            if child is None:  # nothing in flight for a minute: kill the police-visit worker anyway
                child = next(c for c in channels if c.name == "ch-police_visit")
            # The action in flight was read before its claim: the ends now include it.
            self.before["ends"] = {**self.before.get("ends", {}), **self.sampler.ends_now(
                [self.sampler.catalog.topic(f"actions_{child.name.removeprefix('ch-')}").name])}
            fault = Fault(n, kind, child.name, self.now())
            pid = kill9(child)
            state = claim_state(p.settings.redis_url, claim) if claim else None
            fault.detail = f"pid {pid}, " + (f"claim {claim.split(':')[1][:12]}… {state} after the kill"
                                             if claim else "no send in flight")
            fault.restarted_by = restart_child(p, child)
        elif kind == "valkey_restart":
            valkey = self.server("valkey")
            fault = Fault(n, kind, "valkey", self.now())
            valkey.stop()
            down = self.rng.uniform(*self.config.down_s)
            time.sleep(down)
            valkey.start(valkey.data_dir)
            fault.detail = f"down {down:.1f} s, same port and AOF"
            fault.restarted_by = "suite"
        elif kind == "broker_restart":
            broker = self.server("broker")
            with self.sampler.paused():
                fault = Fault(n, kind, "broker", self.now())
                broker.stop()
                down = self.rng.uniform(*self.config.down_s)
                time.sleep(down)
                broker.start(p.settings.run_dir / "kafka")
            fault.detail = f"down {down:.1f} s, same data and ports"
            fault.restarted_by = "suite"
        else:
            raise ValueError(kind)
        fault.back_at_s = self.now()
        self.faults.append(fault)
        return fault

    def wait_recovered(self, fault: Fault, before: dict) -> None:
        """Until every stage committed what was there at the fault and its lag is back to its pre-fault level."""
        deadline = time.monotonic() + self.config.recover_timeout_s
        marks = before.get("ends", {})
        level = level_before(self.sampler, fault.at_s)
        streak, first_ok = 0, None
        while time.monotonic() < deadline:
            time.sleep(self.config.sample_s)
            [s] = self.sampler.last() or [{}]
            if s.get("t", 0) <= fault.back_at_s or "error" in s:
                streak = 0
                continue
            fault.peak_lag = max(fault.peak_lag, sum(s["lag"].values()))
            short = {k: marks[k[1:]] - offset for k, offset in s["committed"].items() if offset < marks.get(k[1:], 0)}
            over = {k: v for k, v in s["lag"].items() if v > level.get(k, 0)}
            passed, settled = not short, not over
            fault.behind = _behind(short, over, level)
            if passed and settled and fault.kind == "worker_kill":
                # Until the dead member's session ran out and the group rebalanced, its partitions
                # wait: lag that has not grown yet is not a recovery.
                settled = self.sampler.group_stable(self.sampler.catalog.app_id, self.workers)
            if passed and settled:
                streak, first_ok = streak + 1, first_ok if streak else s["t"]
            else:
                streak = 0
            if streak >= 2:  # two samples in a row: not one lucky commit
                fault.behind = ""
                fault.recovered_at_s = first_ok
                fault.recover_s = round(fault.recovered_at_s - fault.at_s, 1)
                return

    def run(self, kinds: list[str]) -> None:
        logs = self.platform.settings.run_dir / "logs"
        for n, kind in enumerate(kinds, 1):
            time.sleep(self.rng.uniform(*self.config.gap_s))
            self.before = self.sampler.snapshot()
            marks = log_marks(logs)
            fault = self.inject(n, kind)
            self.wait_recovered(fault, self.before)
            print(fault_line(fault, len(kinds)), flush=True)
            if fault.recover_s is None:
                # Every later fault would find the same stage behind: say why, and stop here.
                for line in digest(logs, marks):
                    print(f"faults:   {line}", flush=True)
                return


def _behind(short: dict, over: dict, level: dict, most: int = 4) -> str:
    """What keeps a recovery from counting: partitions short of their mark, stages above their level."""
    parts = [f"{group} {topic}[{part}] {n} short of the fault's end" for (group, topic, part), n in
             sorted(short.items(), key=lambda kv: -kv[1])[:most]]
    parts += [f"{stage} lag {v} > {level.get(stage, 0)}" for stage, v in sorted(over.items(), key=lambda kv: -kv[1])[:most]]
    return "; ".join(parts)


def level_before(sampler: LagSampler, at_s: float, window_s: float = 20.0) -> dict[str, int]:
    """Per stage, the highest lag of the last `window_s` before the fault (Faust commits in steps), plus slack."""
    level: dict[str, int] = {}
    for s in sampler.since(at_s - window_s):
        if s["t"] > at_s or "error" in s:
            continue
        for k, v in s["lag"].items():
            level[k] = max(level.get(k, 0), v)
    return {k: v + max(5, v // 10) for k, v in level.items()}


def fault_line(f: Fault, total: int) -> str:
    recovered = f"recovered in {f.recover_s:.1f} s" if f.recover_s is not None else "NOT RECOVERED"
    return (f"faults: [{f.n:2d}/{total}] t={f.at_s:6.1f}s {f.kind:<15} {f.target:<16} {recovered}; "
            f"peak lag {f.peak_lag} records; {f.detail}; restarted by {f.restarted_by}"
            + (f"; behind: {f.behind}" if f.behind and f.recover_s is None else ""))


def plan(config: FaultConfig, rng: random.Random) -> list[str]:
    """The faults in a seeded random order; the Valkey and broker restarts never come first."""
    kinds = ["worker_kill"] * config.worker_kills + ["channel_kill"] * config.channel_kills
    rng.shuffle(kinds)
    for kind in ["valkey_restart"] * config.valkey_restarts + ["broker_restart"] * config.broker_restarts:
        kinds.insert(rng.randint(1, len(kinds)), kind)
    return kinds


# ------------------------------------------------------------------------------ run
@contextlib.contextmanager
def child_environment(values: dict[str, str]):
    """The children's settings for this run; the caller's environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _positions_hold(sampler: LagSampler, holds, samples: int, timeout_s: float, each=None) -> float | None:
    """Seconds until `holds(committed, ends)` was true for `samples` samples in a row (a second apart); None at the deadline."""
    started = time.monotonic()
    streak = 0
    while time.monotonic() - started < timeout_s:
        if each is not None:
            each()
        try:
            with sampler.busy:
                committed, ends = sampler.positions()
        except Exception:  # the broker is restarting or busy: ask again next second
            time.sleep(1)
            continue
        streak = streak + 1 if holds(committed, ends) else 0
        if streak >= samples:
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return None


def wait_for_reference(sampler: LagSampler, catalog: Catalog, timeout_s: float = 180.0) -> float:
    """Until the ingest and reference_loader stages have committed every reference update (applied)."""
    topics = {catalog.topic(t).name for t in ("in_registry", "in_intel", "norm_registry", "norm_intel")}

    def applied(committed, ends) -> bool:
        mine = {(t, p): o for (g, t, p), o in committed.items() if g == catalog.app_id and t in topics}
        need = {tp: e for tp, e in ends.items() if tp[0] in topics and e > 0}
        return bool(need) and all(mine.get(tp, 0) >= e for tp, e in need.items())

    took = _positions_hold(sampler, applied, 2, timeout_s)
    if took is None:
        raise TimeoutError(f"reference data not applied after {timeout_s:.0f} s")
    return took


def drain(sampler: LagSampler, observer: Observer, load: Load, timeout_s: float) -> float | None:
    """After the load stopped: every follow-up sent, every stage at lag 0, the observer at the topics' ends."""

    def send_followups() -> None:
        load.send_due_followups()
        load.producer.flush(10)

    def idle(committed, ends) -> bool:
        return (all(o >= ends.get((t, p), 0) for (_, t, p), o in committed.items())
                and observer.caught_up(ends))

    # A few quiet seconds: escalate's timers and late outcomes had their chance.
    return _positions_hold(sampler, idle, 3, timeout_s, each=send_followups)


def run(config: FaultConfig) -> dict:
    from streams.supervisor import bring_up, supervise

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = config.out or RESULTS_DIR / f"faults-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    base = get_settings()
    run_dir = config.run_dir or base.run_dir / "faults" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    # Fresh embedded servers of its own, whatever the environment names; two stream workers.
    settings = base.model_copy(update={"run_dir": run_dir, "kafka_bootstrap_servers": None, "redis_url": None,
                                       "worker_processes": 2})
    rng = random.Random(f"faults:{config.seed}")
    kinds = plan(config, rng)
    catalog = get_catalog(settings.topics_file)
    platform = sampler = observer = load = None
    supervising = threading.Event()  # set: supervision stops (before the platform does)
    result: dict = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                    "run_dir": str(run_dir), "started_at": stamp}
    wall = time.monotonic()
    try:
        with child_environment(CHILD_ENV):
            platform = bring_up(settings, with_simulator=False)
            # Supervised as `antifraud up` is: a worker that stops itself (it found records a
            # rebalance skipped, streams.faust_transport) is restarted, as in production.
            supervise(platform, supervising)
        settings = platform.settings
        print(f"faults: platform up in {time.monotonic() - wall:.0f} s (run dir {run_dir}); plan: "
              + ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds)), flush=True)
        sampler = LagSampler(settings.kafka_bootstrap_servers, catalog)
        sampler.start(config.sample_s)
        load = Load(settings, catalog, seed=config.seed, rate=config.rate, funds_every_s=config.funds_every_s,
                    other_every_s=config.other_every_s, n_persons=config.persons)
        sent = load.seed_reference()
        took = wait_for_reference(sampler, catalog)
        print(f"faults: {sent} reference updates applied in {took:.0f} s; load {config.rate:g} msg/s, "
              f"a funds warning every {config.funds_every_s:g} s", flush=True)
        observer = Observer(settings, catalog, load)
        load.t0 = sampler.started
        load.start()
        result["load_started_s"] = round(time.monotonic() - sampler.started, 1)
        time.sleep(config.warmup_s)
        load.funds_on.set()
        result["funds_started_s"] = round(time.monotonic() - sampler.started, 1)
        time.sleep(min(10.0, config.warmup_s))  # a few funds warnings flow before the first fault
        driver = Driver(config, platform, sampler, rng)
        try:
            driver.run(kinds)
        finally:
            result["faults"] = [asdict(f) for f in driver.faults]
        load.finish()
        result["load_stopped_s"] = round(time.monotonic() - sampler.started, 1)
        result["drain_s"] = drain(sampler, observer, load, config.drain_timeout_s)
        with observer.lock:
            result["verdict"] = judge(load, observer.seen)
        # Restarts beyond the injected kills are the workers that stopped themselves (skipped records).
        result["restarts"] = {c.name: c.restarts for c in platform.children if c.restarts}
        result["dead_children"] = [c.name for c in platform.children if c.process and c.process.poll() is not None]
    except Exception as exc:
        log.exception("fault suite failed")
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if observer is not None:
            observer.close()
        if sampler is not None:
            sampler.close()
        supervising.set()
        if platform is not None:
            platform.stop()
    result["wall_s"] = round(time.monotonic() - wall, 1)
    result["samples"] = [{k: v for k, v in s.items() if k not in ("committed", "ends")}
                         for s in (sampler.samples if sampler else [])]
    result["summary"] = summarize(result)
    out.write_text(json.dumps(result, indent=1, default=str))
    md = out.with_suffix(".md")
    md.write_text(markdown(result, config.plot))
    if result["samples"]:
        plot(result, config.plot)
    for line in summary_lines(result):
        print(f"faults: {line}", flush=True)
    print(f"faults: figures {out}, table {md}, plot {config.plot}", flush=True)
    if not config.keep_run_dir and config.run_dir is None and result["summary"]["ok"]:
        shutil.rmtree(run_dir, ignore_errors=True)  # a failed run keeps its data: the records of a finding
    elif not result["summary"]["ok"]:
        print(f"faults: run directory kept for inspection: {run_dir}", flush=True)
    return result


# ------------------------------------------------------------------------------ figures
def summarize(result: dict) -> dict:
    faults = result.get("faults", [])
    by_kind: dict[str, list[dict]] = {}
    for f in faults:
        by_kind.setdefault(f["kind"], []).append(f)
    recovery = {}
    for kind, fs in by_kind.items():
        times = [f["recover_s"] for f in fs if f["recover_s"] is not None]
        recovery[kind] = {"injected": len(fs), "recovered": len(times),
                          "median_s": round(statistics.median(times), 1) if times else None,
                          "max_s": max(times) if times else None}
    v = result.get("verdict", {})
    ok = (not result.get("error") and bool(v) and result.get("drain_s") is not None
          and all(r["recovered"] == r["injected"] for r in recovery.values())
          and v["funds_warnings"]["lost"] == 0 and v["funds_warnings"]["more_than_one"] == 0
          and v["alerts"]["duplicate_records"] == 0 and v["contacts"]["duplicate_contacts"] == 0
          and v["bank_requests"]["lost"] == 0 and v["bank_requests"]["duplicates"] == 0)
    return {"ok": ok, "faults": recovery, "faults_total": len(faults)}


def summary_lines(result: dict) -> list[str]:
    s, v = result["summary"], result.get("verdict")
    lines = [f"{'PASS' if s['ok'] else 'FAIL'} after {result['wall_s']:.0f} s; {s['faults_total']} faults: "
             + ", ".join(f"{k} {r['injected']} (recovered {r['recovered']}, median {r['median_s']} s, max {r['max_s']} s)"
                         for k, r in s["faults"].items())]
    if result.get("error"):
        lines.append(f"error: {result['error']}")
    if v:
        fw, a, c, b = v["funds_warnings"], v["alerts"], v["contacts"], v["bank_requests"]
        lines.append(f"funds warnings expected {fw['expected']}, raised {fw['raised']}, lost {fw['lost']}, "
                     f"more than one {fw['more_than_one']}; alerts {a['distinct']} (duplicate records {a['duplicate_records']})")
        lines.append(f"contacts {c['attempts']} (duplicate contacts {c['duplicate_contacts']}, same outcome produced "
                     f"again {c['outcome_produced_again']}); bank requests {b['distinct']} for {b['expected_accounts']} "
                     f"funds accounts (lost {b['lost']}, duplicated {b['duplicates']}); drained in {result.get('drain_s')} s")
        for what, items in v["evidence"].items():
            if items:
                lines.append(f"{what}: {items[:10]}")
    return lines


def markdown(result: dict, plot_path: Path) -> str:
    s, v = result["summary"], result.get("verdict") or {}
    cfg = result["config"]
    out = [f"Run of {result['started_at']}: seed {cfg['seed']}, {cfg['rate']:g} msg/s mixed load with a funds "
           f"warning every {cfg['funds_every_s']:g} s, 2 stream workers, {result['wall_s']:.0f} s wall time; "
           f"verdict **{'PASS' if s['ok'] else 'FAIL'}**.", ""]
    out += ["| fault | injected | recovered | median time to recover | longest |", "| --- | ---: | ---: | ---: | ---: |"]
    for kind, r in s["faults"].items():
        out.append(f"| {kind} | {r['injected']} | {r['recovered']} | {r['median_s']} s | {r['max_s']} s |")
    if "restarts" in result:
        out += ["", "Starts after the first, per process (injected kills and restarts by the supervisor, e.g. a "
                    "worker that stopped itself on skipped records): "
                + (", ".join(f"{name} {n}" for name, n in sorted(result["restarts"].items())) or "none") + "."]
    if v:
        fw, a, c, b = v["funds_warnings"], v["alerts"], v["contacts"], v["bank_requests"]
        out += ["", "| check | expected | found | lost | duplicates |", "| --- | ---: | ---: | ---: | ---: |",
                f"| funds warnings (one per person) | {fw['expected']} | {fw['raised']} | {fw['lost']} | {fw['more_than_one']} |",
                f"| alerts (alert_id, version) | - | {a['distinct']} | - | {a['duplicate_records']} |",
                f"| contacts (action_id, attempt) | - | {c['attempts']} | - | {c['duplicate_contacts']} |",
                f"| bank requests (funds accounts; request_id) | {b['expected_accounts']} | {b['distinct']} | {b['lost']} | {b['duplicates']} |",
                "", f"Outcome records produced again with the same bytes (a redelivery answered from the claim, "
                    f"nobody contacted again): {c['outcome_produced_again']}. Drained {result.get('drain_s')} s "
                    f"after the load stopped."]
    out += ["", "| # | t (s) | fault | target | running again after (s) | time to recover (s) | peak lag (records) |",
            "| ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for f in result.get("faults", []):
        out.append(f"| {f['n']} | {f['at_s']:.0f} | {f['kind']} | {f['target']} | {f['back_at_s'] - f['at_s']:.1f} | "
                   f"{f['recover_s'] if f['recover_s'] is not None else 'not recovered'} | {f['peak_lag']} |")
    out += ["", f"![lag and throughput around each fault]({os.path.relpath(plot_path, PROJECT_ROOT / 'docs')})", ""]
    return "\n".join(out)


COLORS = {"worker_kill": "tab:red", "channel_kill": "tab:purple", "valkey_restart": "tab:orange",
          "broker_restart": "tab:brown"}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = result.get("load_started_s", 0)
    everything = [s for s in result["samples"] if s["t"] >= start]  # the seeding's burst would flatten the rest
    samples = [s for s in everything if "error" not in s]
    if len(samples) < 2:
        return
    nan = float("nan")
    t = [s["t"] for s in everything]  # a sample without the broker is a gap in every curve
    labels = sorted({k for s in samples for k in s["lag"]})
    peak = {k: max(s["lag"].get(k, 0) for s in samples) for k in labels}
    shown = sorted(labels, key=lambda k: -peak[k])[:8]  # the stages that ever lagged most
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True)
    for k in shown:
        ax1.plot(t, [s["lag"].get(k, 0) if "error" not in s else nan for s in everything], lw=1, label=k)
    ax1.set_ylabel("lag (records not committed)")
    ax1.set_yscale("symlog", linthresh=10)
    ax1.set_title("Fault suite: lag per stage and throughput; faults marked (shaded: until recovered)")

    def rate(key, window_s: float = 5.0):
        """Records/s over the last `window_s` (Faust commits every 2.8 s: a per-second rate is all steps)."""
        out = []
        for i, b in enumerate(everything):
            a = next((x for x in reversed(everything[:i]) if x["t"] <= b["t"] - window_s), None)
            between = everything[everything.index(a):i + 1] if a is not None else []
            if a is None or "error" in b or any("error" in x for x in between):
                out.append(nan)
            else:
                out.append(max(0.0, (key(b) - key(a)) / (b["t"] - a["t"])))
        return out

    ax2.plot(t, rate(lambda s: s["offered"]), lw=1, color="tab:gray", label="offered (input topics)")
    ax2.plot(t, rate(lambda s: s["done"].get("ingest", 0)), lw=1, color="tab:blue", label="ingest committed")
    ax2.plot(t, rate(lambda s: sum(v for k, v in s["done"].items() if k.startswith("route"))), lw=1,
             color="tab:red", label="alerts routed")
    ax2.plot(t, rate(lambda s: sum(v for k, v in s["done"].items() if k.startswith("channel-"))), lw=1,
             color="tab:green", label="actions carried out (channel workers)")
    ax2.set_ylabel("records/s")
    ax2.set_xlabel("seconds since the platform came up")
    ax2.legend(fontsize=7, loc="upper left")
    seen = set()
    for f in result.get("faults", []):
        for ax in (ax1, ax2):
            ax.axvline(f["at_s"], color=COLORS.get(f["kind"], "k"), lw=0.9, alpha=0.7,
                       label=None if (f["kind"] in seen or ax is ax2) else f["kind"])
            if f["kind"] == "broker_restart" and f.get("back_at_s"):  # no measure while the broker is away
                ax.axvspan(f["at_s"], f["back_at_s"], color="0.85", alpha=0.5, lw=0)
            if f.get("recovered_at_s") and ax is ax1:
                ax.axvspan(f["at_s"], f["recovered_at_s"], color=COLORS.get(f["kind"], "k"), alpha=0.06)
        seen.add(f["kind"])
    ax1.legend(fontsize=7, ncol=6, loc="upper left")
    ax1.set_ylim(top=max(peak.values(), default=10) * 8)  # room for the legend
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ command line
def parse(argv: list[str] | None = None) -> FaultConfig:
    d = FaultConfig()
    p = argparse.ArgumentParser(prog="antifraud faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--worker-kills", type=int, default=d.worker_kills)
    p.add_argument("--channel-kills", type=int, default=d.channel_kills)
    p.add_argument("--valkey-restarts", type=int, default=d.valkey_restarts)
    p.add_argument("--broker-restarts", type=int, default=d.broker_restarts)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--rate", type=float, default=d.rate, help="mixed-load messages per second")
    p.add_argument("--out", type=Path, default=None, help="figures as JSON (markdown beside it)")
    p.add_argument("--plot", type=Path, default=d.plot)
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--keep-run-dir", action="store_true")
    a = p.parse_args(argv)
    return FaultConfig(worker_kills=a.worker_kills, channel_kills=a.channel_kills, valkey_restarts=a.valkey_restarts,
                       broker_restarts=a.broker_restarts, seed=a.seed, rate=a.rate, out=a.out, plot=a.plot,
                       run_dir=a.run_dir, keep_run_dir=a.keep_run_dir)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    result = run(parse(argv))
    return 0 if result["summary"]["ok"] else 1
