"""`antifraud bench`: one run, every measurement, one JSON file and a table.

    servers -> raw broker -> pass-through -> reference data -> stages alone -> chain -> latency

Embedded broker and Valkey in a fresh run directory unless KAFKA_BOOTSTRAP_SERVERS and
REDIS_URL name real ones. Never point it at production: it writes synthetic events to
the real input topics and moves the stream worker's consumer group.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

import streams.worker
from bench import latency, phases
from bench.config import BENCH_TOPIC_PREFIX, BENCH_TOPICS, BenchConfig
from bench.context import Bench, create_topics, delete_bench_topics
from bench.machine import machine_info, versions
from bench.mix import sample_payloads
from bench.offsets import Offsets
from bench.raw import raw_references
from bench.report import render, update_docs
from bench.resources import ResourceMonitor
from streams.catalog import get_catalog
from streams.settings import get_settings
from streams.supervisor import Platform
from streams.topics_admin import apply_topics

SCHEMA = "antifraud-bench/1"
log = logging.getLogger(__name__)


def main(config: BenchConfig | None = None, console: Console | None = None, **overrides) -> Path:
    """Run the bench; returns the path of the JSON results. `overrides` are BenchConfig fields."""
    for name in ("rates", "alone"):  # a CLI hands over lists
        if isinstance(overrides.get(name), list):
            overrides[name] = tuple(overrides[name]) or None
    config = dataclasses.replace(config or BenchConfig(), **overrides)
    # The simulator logs every fraud scenario it starts: thousands of lines in a pre-load.
    logging.getLogger("simulator").setLevel(logging.WARNING)
    console = console or Console(width=None if sys.stdout.isatty() else 200)  # logs and CI: no wrapping
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    settings = get_settings()
    run_dir = config.run_dir or settings.run_dir / "bench" / stamp
    settings = settings.model_copy(update={"run_dir": run_dir})
    results = {"schema": SCHEMA, "started_at": _now(), "machine": machine_info(), "config": config.as_dict(),
               "errors": [], "notes": []}
    platform = Platform(settings)
    bench = None
    try:
        bench = _start(platform, config, console, stamp)
        results["versions"] = versions(bench.settings.redis_url)
        results["settings"] = _settings_record(bench)
        _run_phases(bench, results)
    except Exception as exc:  # the results so far are still written
        log.exception("bench failed")
        results["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if bench is not None:
            bench.monitor.sample_now()
            results["peak_rss_mb"] = bench.monitor.peaks()
            results["notes"] += bench.notes
            bench.monitor.stop()
            bench.offsets.close()
            if not platform.servers:  # external servers: leave nothing of the bench's own behind
                try:
                    results["notes"].append(f"deleted {len(delete_bench_topics(bench.settings.kafka_bootstrap_servers))} "
                                            "bench-only topics")
                except Exception as exc:  # noqa: BLE001 - cleanup must not lose the results
                    results["notes"].append(f"bench-only topics (prefix {BENCH_TOPIC_PREFIX}) not deleted: {exc}")
        gc.collect()  # the simulators' producers (reference cycles) go before the broker does
        platform.stop()
        results["finished_at"] = _now()
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = _write(results, config.out_dir, stamp)
    render(results, console)
    console.print(f"results: {path}")
    if config.update_docs:
        console.print(f"updated {update_docs(results, source=path.name)}")
    if not config.keep_run_dir and config.run_dir is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return path


def _start(platform: Platform, config: BenchConfig, console: Console, stamp: str) -> Bench:
    settings = platform.start_servers()
    catalog = get_catalog(settings.topics_file)
    apply_topics(catalog, settings.kafka_bootstrap_servers, settings.replication_factor)
    create_topics(settings.kafka_bootstrap_servers, BENCH_TOPICS, settings.replication_factor or 1)
    monitor = ResourceMonitor().start()
    monitor.watch("bench", os.getpid())
    for server in platform.servers:  # embedded only: external servers are not ours to sample
        monitor.watch(server.name, server.process.pid)
    return Bench(config, settings, platform, catalog, tuple(streams.worker.STAGES),
                 Offsets(settings.kafka_bootstrap_servers), monitor, console, stamp)


def _run_phases(bench: Bench, results: dict) -> None:
    c = bench.config
    phase = _phase_runner(bench, results)
    payloads = sample_payloads(bench.settings, 2_000, persons=c.persons, intel=c.intel, seed=c.seed)
    results["references"] = {}
    raw = phase("raw broker", lambda: raw_references(bench.settings, payloads, c.raw_records, bench.monitor))
    if raw:
        results["references"]["raw"] = raw
    results["references"]["passthrough"] = phase("pass-through", lambda: phases.measure_passthrough(bench))
    results["reference_load"] = phase("reference data", lambda: phases.load_reference_data(bench))
    results["stages"] = phase("stages alone", lambda: phases.measure_stages_alone(bench)) or []
    chain = phase("chain", lambda: phases.measure_chain(bench))
    workers = None
    if chain:
        results["chain"], workers = chain
    results["latency"] = phase("latency", lambda: latency.measure_latency(bench, workers))
    _ratios(results)


def _phase_runner(bench: Bench, results: dict):
    def run(name: str, work):
        bench.say(f"[bold]{name}[/]")
        started = time.monotonic()
        try:
            value = work()
        except Exception as exc:
            log.exception("phase %s failed", name)
            results["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        for item in _drain_results(value):
            if item.get("error"):
                results["errors"].append(item["error"])
        bench.say(f"{name}: done in {time.monotonic() - started:.1f} s")
        return value

    return run


def _drain_results(value) -> list[dict]:
    if isinstance(value, tuple):
        value = value[0]
    if isinstance(value, dict):
        return [value] + ([value["drain"]] if isinstance(value.get("drain"), dict) else [])
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _ratios(results: dict) -> None:
    """Each stage's and the chain's rate relative to the references of the same run."""
    refs = results.get("references", {})
    passthrough = (refs.get("passthrough") or {}).get("events_per_s") or 0.0
    raw_produce = ((refs.get("raw") or {}).get("produce_platform") or {}).get("records_per_s") or 0.0
    for item in list(results.get("stages") or []) + [results.get("chain") or {}]:
        if "events_per_s" in item:
            item["vs_passthrough"] = round(item["events_per_s"] / passthrough, 2) if passthrough else None
            item["vs_raw_produce_platform"] = round(item["events_per_s"] / raw_produce, 3) if raw_produce else None


def _settings_record(bench: Bench) -> dict:
    s = bench.settings
    return {
        "servers": "embedded" if bench.platform.servers else "external",
        "stages": list(bench.stages),
        "bench_load_batching": "bulk (bench-only loads: 10,000-record batches, 20 ms linger; bench/producer.py)",
        "producer_linger_ms": s.producer_linger_ms,
        "producer_max_batch_bytes": s.producer_max_batch_bytes,
        "broker_session_timeout_s": s.broker_session_timeout_s,
        "ingest_batch_size": s.ingest_batch_size,
        "ingest_batch_within_s": s.ingest_batch_within_s,
        "replication_factor": s.replication_factor or 1,
        "faust_commit_interval_s": bench.config.commit_interval_s or 2.8,
    }


def _write(results: dict, out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
