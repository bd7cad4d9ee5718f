"""The bench: a tiny run completes and writes well-formed results. No timed assertions.

The run is real (embedded broker and Valkey, real worker processes) but tiny: a few
hundred events, a few hundred residents, a second or two per phase. Only one stage is
measured alone (plus the chain), so the test stays short as stages are added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from bench.drain import Timeline, throughput
from bench.latency import stats
from bench.report import BEGIN, END, markdown, update_docs
from bench.schema import RESULTS_SCHEMA
from streams.settings import PROJECT_ROOT

TINY = [
    "--persons", "300", "--intel", "100", "--events", "300", "--chain-events", "300", "--raw-records", "2000",
    "--warmup", "1", "--duration", "1", "--rate", "200", "--alone", "ingest",
    "--commit-interval", "0.5",  # progress is read from commits: finer steps, shorter phases
]


def numbers(value, path="$"):
    """Every number in a JSON document, with where it is."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from numbers(item, f"{path}[{n}]")


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "ANTIFRAUD_RUN_DIR")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *TINY, "--out", str(tmp / "results"), "--run-dir", str(tmp / "run")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [path] = (tmp / "results").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.timeout(180)
def test_a_tiny_run_writes_results_that_match_the_schema(tiny_results):
    jsonschema.validate(tiny_results, RESULTS_SCHEMA)
    assert tiny_results["errors"] == []
    negative = [(where, n) for where, n in numbers(tiny_results) if n < 0]
    assert not negative


@pytest.mark.timeout(180)
def test_the_results_say_what_was_measured_and_where(tiny_results):
    machine, versions = tiny_results["machine"], tiny_results["versions"]
    assert machine["cores"] >= 1 and machine["cpu_model"]
    assert versions["kafka"] and versions["faust"] and versions["valkey"] not in ("unknown", "unreachable")
    assert tiny_results["settings"]["servers"] == "embedded"
    assert tiny_results["reference_load"]["records"] > 300  # phones and accounts of 300 residents, and intel
    assert [s["stage"] for s in tiny_results["stages"]] == ["ingest"]
    assert tiny_results["chain"]["events"] == 300
    assert [s["offered_rate"] for s in tiny_results["latency"]["steps"]] == [200]
    assert {"worker", "broker", "valkey", "bench", "passthrough"} <= set(tiny_results["peak_rss_mb"])


@pytest.mark.timeout(180)
def test_the_worker_processes_are_counted(tiny_results):
    assert tiny_results["config"]["workers"] == 1
    chain, [step] = tiny_results["chain"], tiny_results["latency"]["steps"]
    assert chain["workers"] == 1 and tiny_results["latency"]["workers"] == 1
    assert chain["resources"]["worker"]["processes"] == 1
    assert step["resources"]["worker"]["processes"] == 1
    [ingest] = tiny_results["stages"]
    assert ingest["workers"] == 1 and ingest["resources"]["worker"]["processes"] == 1


@pytest.mark.timeout(180)
def test_the_docs_block_is_rewritten_from_the_results(tiny_results, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nhand-written\n\n{BEGIN}\nold\n{END}\n\nmore hand-written\n")
    update_docs(tiny_results, doc, "x.json")
    text = doc.read_text()
    assert "old" not in text and "hand-written" in text and "more hand-written" in text
    assert markdown(tiny_results, "x.json") in text
    assert "| whole chain, 1 worker " in text and "| Faust pass-through" in text
    assert "worker processes 1 (whole chain and latency" in text


# ------------------------------------------------------------------ the arithmetic, no servers
def test_the_sustained_rate_skips_the_warmup_and_stops_after_the_window():
    # 1,000 events/s from t=10 to t=110; samples every second; warm-up 5 s, window 60 s.
    timeline = Timeline(["ingest"], spawned_at=5.0, done=True, totals={"ingest": 100_000})
    timeline.samples = [(float(t), {"ingest": max(0, min(100_000, (t - 10) * 1000))}) for t in range(5, 112)]
    result = throughput(timeline, warmup_s=5.0, duration_s=60.0)
    assert result["method"] == "window"
    assert result["events_per_s"] == pytest.approx(1000.0)
    assert result["window_s"] == pytest.approx(60.0)
    assert result["startup_s"] == pytest.approx(6.0)  # first progress seen at t=11


def test_a_chain_is_as_fast_as_its_slowest_stage():
    # Stage b handles its 50 events per input event... at half the pace of stage a.
    timeline = Timeline(["a", "b"], spawned_at=0.0, done=True, totals={"a": 1000, "b": 500})
    timeline.samples = [(float(t), {"a": min(1000, 100 * t), "b": min(500, 25 * t)}) for t in range(0, 21)]
    result = throughput(timeline, warmup_s=2.0, duration_s=10.0)
    assert result["events_per_s"] == pytest.approx(50.0)  # b does 5 % of its work per second


def test_latency_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert stats(values) | {"mean_ms": None} == {
        "count": 100, "p50_ms": 50, "p95_ms": 95, "p99_ms": 99, "max_ms": 100, "mean_ms": None}
    assert stats([])["p99_ms"] is None


def test_sparse_flows_do_not_set_the_chain_rate():
    # Route sees 1 % as many records, committed late in one step: the chain rate is a's.
    timeline = Timeline(["a", "route"], spawned_at=0.0, done=True, totals={"a": 1000, "route": 10})
    timeline.samples = [(float(t), {"a": min(1000, 100 * t), "route": 10 if t >= 15 else 0}) for t in range(0, 21)]
    result = throughput(timeline, warmup_s=2.0, duration_s=5.0)
    assert result["events_per_s"] == pytest.approx(100.0)
    assert result["flows"]["route"]["done_after_s"] == pytest.approx(14.0)


class FakeOffsets:
    """A group that commits 100 a poll up to `stuck_at` of 1,000 on one partition."""

    def __init__(self, stuck_at: int) -> None:
        self.position, self.stuck_at = 0, stuck_at

    def committed(self, group, tps):
        self.position = min(self.position + 100, self.stuck_at)
        return {tp: self.position for tp in tps}

    def ends(self, tps):
        return {tp: 1000 for tp in tps}


def test_a_stuck_tail_is_reported_not_waited_for(monkeypatch):
    import bench.drain as drain

    monkeypatch.setattr(drain, "POLL_S", 0.01)
    monkeypatch.setattr(drain, "TAIL_TIMEOUT_S", 0.1)
    flow = drain.Flow("enrich", "g", {("t", 0): 0})
    timeline = drain.run_drain(FakeOffsets(stuck_at=995), [flow], 0.0, lambda: True, stall_timeout_s=60)
    assert not timeline.done and timeline.error is None
    assert timeline.stuck_tail == {"enrich": 5}
    timeline = drain.run_drain(FakeOffsets(stuck_at=500), [flow], 0.0, lambda: True, stall_timeout_s=0.2)
    assert timeline.stuck_tail is None and "no progress" in timeline.error


def test_the_window_ends_when_the_work_does():
    # 1,000 events at 100/s from t=1, then a stuck tail of 5: idle seconds are not a rate.
    timeline = Timeline(["enrich"], spawned_at=0.0, totals={"enrich": 1000})
    timeline.stuck_tail = {"enrich": 5}
    timeline.samples = [(float(t), {"enrich": min(995, 100 * t)}) for t in range(0, 60)]
    result = throughput(timeline, warmup_s=2.0, duration_s=60.0)
    assert result["method"] == "window"
    assert result["events_per_s"] == pytest.approx(100.0, rel=0.01)  # not 995 / 57 s
    assert result["drain_events_per_s"] == pytest.approx(100.0, rel=0.01)
