"""The measured phases that drain a backlog: pass-through, reference load, stages alone, chain."""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bench import mix
from bench.config import PASSTHROUGH_APP_ID, PASSTHROUGH_IN, PASSTHROUGH_OUT
from bench.context import Bench
from bench.drain import TAIL_TIMEOUT_S, Flow, run_drain, throughput
from bench.processes import all_alive, spawn_module, spawn_workers, stop_child, stop_children
from bench.producer import BenchProducer, bulk_config
from bench.stages import fed_stages, forward_inputs, reference_stages, stage_inputs, stages_to_run_alone
from streams.supervisor import Child
from streams.topics_admin import apply_topics


# ------------------------------------------------------------------------------- loading
def preload_mix(bench: Bench, count: int, label: str, topic_override: str | None = None) -> BenchProducer:
    """`count` event-mix messages, bulk-produced; their end offsets are tracked from now on."""
    c = bench.config
    producer = BenchProducer(bulk_config(bench.settings), topic_override=topic_override)
    sim = mix.simulator(bench.settings, producer, persons=c.persons, intel=c.intel, seed=c.seed,
                        run_tag=f"{bench.tag}-{label}", paced=False)
    _with_produce_progress(bench, f"pre-load {label}", count, producer, lambda: mix.preload(sim, count))
    bench.offsets.track(producer.ends)
    return producer


def load_reference_data(bench: Bench) -> dict:
    """Registry and intelligence lists through in_registry / in_intel, then drained by the platform."""
    c = bench.config
    mark = bench.ends_of(all_stage_inputs(bench))
    producer = BenchProducer(bulk_config(bench.settings))
    sim = mix.simulator(bench.settings, producer, persons=c.persons, intel=c.intel, seed=c.seed,
                        run_tag=f"{bench.tag}-ref")
    started = time.monotonic()
    _with_produce_progress(bench, "produce reference data", None, producer, sim.seed_reference)
    produce_s = time.monotonic() - started
    bench.offsets.track(producer.ends)
    result = {
        "persons": c.persons,
        "intel_entries": len(sim.intel),
        "records": producer.delivered,
        "failed": producer.failed,
        "produce_s": round(produce_s, 2),
        "produce_per_s": round(producer.delivered / produce_s, 1) if produce_s > 0 else 0.0,
    }
    stages = reference_stages(bench.catalog, bench.stages)
    result["stages"] = list(stages)
    result["drain"] = drain_with_worker(bench, "reference load", stages, mark, workers=bench.config.reference_workers)
    return result


def _with_produce_progress(bench: Bench, what: str, total: int | None, producer: BenchProducer, work) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name=what, daemon=True)
    started = time.monotonic()
    with bench.progress() as progress:
        task = progress.add_task(what, total=total, rate="")
        thread.start()
        while thread.is_alive():
            thread.join(0.25)
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=producer.produced, rate=f"{producer.produced / elapsed:,.0f}/s")
        producer.flush(120)
        progress.update(task, completed=producer.delivered, total=total or producer.delivered)
    if errors:
        raise errors[0]


def empty_tables(bench: Bench, timeout_s: float = 60.0) -> list[str]:
    """Delete the Faust changelogs and create them again from topics.yaml: every table starts empty.

    A phase measures its stages from a clean start: with the tables of the phases before
    it (the same seeded residents, so open alerts and cool-downs), correlate and escalate
    would do other work than on a fresh platform, and recovering them would cost start-up
    time. Compacted topics refuse DeleteRecords, hence delete and re-create. Only while no
    worker runs; every worker the bench starts has a fresh store (bench.processes), so
    none keeps a table in RocksDB either.
    """
    bootstrap = bench.settings.kafka_bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [spec.name for spec in bench.catalog.topics.values() if spec.kind == "changelog"]
    present = [name for name in names if name in admin.list_topics(timeout=10).topics]
    if present:
        for future in admin.delete_topics(present, operation_timeout=30).values():
            future.result(30)
    deadline = time.monotonic() + timeout_s
    while True:  # deletion is asynchronous: creating a name still being deleted fails
        listed = admin.list_topics(timeout=10).topics
        if not any(name in listed for name in names):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"changelogs not deleted after {timeout_s:.0f} s: {sorted(set(names) & set(listed))}")
        time.sleep(0.2)
    apply_topics(bench.catalog, bootstrap, bench.settings.replication_factor)
    return names


# ------------------------------------------------------------------------------- draining
def stage_flows(bench: Bench, stages: tuple[str, ...], mark: dict, group: str) -> list[Flow]:
    flows = []
    for stage in stages:
        tps = bench.offsets.partitions(forward_inputs(bench.catalog, stage, bench.stages))
        if tps:
            flows.append(Flow(stage, group, {tp: mark.get(tp, 0) for tp in tps}))
    return flows


def all_stage_inputs(bench: Bench) -> list[str]:
    return sorted({t for s in bench.stages for t in stage_inputs(bench.catalog, s)})


def drain_with_worker(
    bench: Bench, label: str, stages: tuple[str, ...], mark: dict, keep: bool = False, platform_group: bool = False,
    workers: int = 1,
):
    """Run `workers` worker processes with `stages` over the backlog after `mark`; the throughput result.

    platform_group: the real `antifraud worker` in the platform's consumer group (the
    chain); otherwise the stage launcher in a fresh group (see bench.stage_worker).
    Several workers share the group, as in `antifraud up`: the group's commits are their
    joint progress, and their CPU is summed under the role "worker" (bench.resources).
    With keep=True the result is (result, workers) and the workers keep running.
    """
    group = bench.group if platform_group else bench.fresh_group(label)
    flows = stage_flows(bench, stages, mark, group)
    start_flows_at_mark(bench, flows)
    spawned = time.monotonic()
    children = spawn_workers(bench.platform, stages, None if platform_group else group, workers, **bench.worker_env())
    for child in children:
        bench.monitor.watch("worker", child.process.pid)
    result = _measure(bench, label, flows, children, spawned)
    result["stages"] = list(stages)
    result["workers"] = len(children)
    if keep:
        return result, children
    stop_children(bench.platform, children)
    return result


def start_flows_at_mark(bench: Bench, flows: list[Flow]) -> None:
    """Commit each flow's start as its group's position, where it is not already there."""
    for flow in flows:
        committed = bench.offsets.committed(flow.group, flow.start)
        # Never committed + starting at 0: the worker's auto_offset_reset (earliest) does it.
        moves = {tp: o for tp, o in flow.start.items() if committed.get(tp) != o and (committed.get(tp), o) != (None, 0)}
        try:
            bench.offsets.commit(flow.group, moves)
        except KafkaException as exc:
            raise RuntimeError(
                f"cannot set the positions of consumer group {flow.group} ({exc}): the broker refuses "
                "commits from outside a group while members of it run; is another bench or platform running?"
            ) from exc


def _measure(bench: Bench, label: str, flows: list[Flow], workers: list[Child], spawned: float) -> dict:
    with bench.progress() as progress:
        tasks = {f.name: progress.add_task(f"{label}: {f.name}", total=None, rate="") for f in flows}

        def show(consumed: dict, totals: dict) -> None:
            elapsed = max(time.monotonic() - spawned, 1e-9)
            for name, task in tasks.items():
                progress.update(task, completed=consumed[name], total=totals[name],
                                rate=f"{consumed[name] / elapsed:,.0f}/s")

        # Every worker must live: with one gone, the others would take over its partitions
        # after a rebalance, and the rate would be of fewer workers than reported.
        timeline = run_drain(bench.offsets, flows, spawned, lambda: all_alive(workers), show,
                             stall_timeout_s=bench.config.drain_timeout_s)
    result = throughput(timeline, bench.config.warmup_s, bench.config.duration_s)
    if timeline.stuck_tail:
        bench.notes.append(f"{label}: {timeline.stuck_tail} event(s) still uncommitted {TAIL_TIMEOUT_S:.0f} s after "
                           "the rest, not waited for: held back by the stage, a gap in its acks, or a topic that "
                           "topics.yaml says the stage consumes and its agents do not")
    if timeline.error:
        logs = ", ".join(str(bench.settings.run_dir / "logs" / f"{w.name}.log") for w in workers)
        result["error"] = f"{label}: {timeline.error} (log: {logs})"
    window = result.pop("window", None)
    bench.monitor.sample_now()
    result["resources"] = bench.monitor.usage(*window, result["events_in_window"]) if window else {}
    return result


# ------------------------------------------------------------------------------- phases
def measure_passthrough(bench: Bench) -> dict:
    mark = bench.ends_of([PASSTHROUGH_IN])
    preload_mix(bench, bench.config.events, "passthrough", topic_override=PASSTHROUGH_IN)
    flow = Flow("passthrough", PASSTHROUGH_APP_ID, mark)
    start_flows_at_mark(bench, [flow])
    spawned = time.monotonic()
    child = spawn_module(bench.platform, "passthrough", "bench.passthrough", **bench.worker_env())
    bench.monitor.watch("passthrough", child.process.pid)
    result = _measure(bench, "pass-through", [flow], [child], spawned)
    stop_child(bench.platform, child)
    produced = sum(bench.ends_of([PASSTHROUGH_OUT]).values())
    result["output_records"] = produced
    return result


def measure_stages_alone(bench: Bench) -> list[dict]:
    """Each stage alone, in pipeline order; a stage's input is what the one before it wrote."""
    to_run = stages_to_run_alone(bench.stages, bench.config.alone)
    empty_tables(bench)  # not the reference load's ingest tally: each stage alone starts empty
    mark = bench.ends_of(all_stage_inputs(bench))
    preload_mix(bench, bench.config.events, "stages")
    results = []
    for stage in to_run:
        flows = stage_flows(bench, (stage,), mark, bench.group)
        waiting = sum(max(0, e - mark.get(tp, 0)) for tp, e in bench.offsets.ends(
            [tp for f in flows for tp in f.start]).items())
        if not waiting:
            bench.notes.append(f"stage {stage}: nothing in its input topics from the event mix; not measured alone")
            results.append({"stage": stage, "skipped": "no input from the event mix"})
            continue
        result = drain_with_worker(bench, f"{stage} alone", (stage,), mark)
        results.append({"stage": stage, **result})
    return results


def measure_chain(bench: Bench) -> tuple[dict, list[Child]]:
    """Every stage in `--workers` `antifraud worker` processes (one group), from the input topics to the
    last stage's output; the workers keep running for the latency steps."""
    unfed = [s for s in bench.stages if s not in fed_stages(bench.catalog, bench.stages)]
    if unfed:
        bench.notes.append(f"chain: {', '.join(unfed)} get no events from the feeds with the stages now in STAGES")
    empty_tables(bench)  # not the stages-alone tables: the chain starts as a fresh platform would
    mark = bench.ends_of(all_stage_inputs(bench))
    preload_mix(bench, bench.config.chain_events, "chain")
    return drain_with_worker(bench, "chain", bench.stages, mark, keep=True, platform_group=True,
                             workers=bench.config.workers)


