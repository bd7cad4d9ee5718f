"""The soak mode: an 18-second run of the whole platform writes samples, a plot and a summary.

Real processes (embedded Kafka and Valkey, every platform process, the simulator at a low
rate); nothing about speed or memory is asserted, only that each sample has what the
soak promises to record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import SoakConfig, markdown, parse, summarize
from streams.settings import PROJECT_ROOT


@pytest.mark.timeout(150)
@pytest.mark.integration  # the whole platform, for a few minutes
def test_a_short_soak_records_samples_plot_and_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "ANTIFRAUD_RUN_DIR")}
    out, plot, summary = tmp_path / "soak.jsonl", tmp_path / "soak.png", tmp_path / "soak.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--soak", "--minutes", "0.3", "--every-s", "6", "--rate", "20",
         "--out", str(out), "--plot", str(plot), "--summary", str(summary), "--run-dir", str(tmp_path / "run")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=140,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["type"] == "start" and records[0]["versions"]["kafka"]
    samples = [r for r in records if r["type"] == "sample"]
    # One every 6 s for 18 s, but a sample can take seconds on a loaded machine (make test runs two
    # processes): the count is timing, the test checks that every sample is whole.
    assert len(samples) >= 2
    assert proc.stdout.count(" min] broker ") == len(samples)  # a printed line per sample
    for sample in samples:
        assert {"broker", "valkey", "worker-1", "simulator", "soak"} <= set(sample["rss_mb"])
        assert sample["broker_disk_mb"] > 0
        assert "ingest" in sample["lag"] and any(k.startswith("channel-") for k in sample["lag"])
        assert all(v["age_s"] >= 0 and v["records"] >= 0 for v in sample["lag"].values())
        assert {"count", "p50_ms", "p99_ms"} <= set(sample["latency_ms"])
    assert samples[-1]["minute"] >= 0.25
    assert sum(s["inputs"] for s in samples) > 0
    final = records[-1]
    assert final["type"] == "summary" and final["error"] is None
    assert {"broker_rss_flat", "broker_rss_under_limit", "lag_under_limit"} <= set(final["checks"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = summary.read_text()
    assert "Done when" in text and "soak.png" in text


def test_the_summary_judges_the_done_when_from_the_samples():
    def sample(minute, broker_mb, lag_s):
        return {"minute": minute, "elapsed_s": minute * 60, "rss_mb": {"broker": broker_mb, "worker-1": 200.0},
                "broker_disk_mb": 10.0, "lag": {"ingest": {"records": 3, "age_s": lag_s, "partitions": 4}},
                "max_lag_s": lag_s, "max_lag_stage": "ingest",
                "latency_ms": {"count": 1, "p50_ms": 100.0, "p99_ms": 200.0}, "inputs": 12_000}

    header = {"started_at": "t0", "config": {"rate": 200, "minutes": 60, "every_s": 60},
              "machine": {"cores": 2, "cpu_model": "x", "memory_gb": 8}, "versions": {"kafka": "4.1.1"}}
    flat = [sample(m, 700.0 + (m % 2), 2.0) for m in range(1, 61)]
    ok = summarize(flat, SoakConfig(), header, None)
    assert ok["ok"] and ok["checks"]["broker_rss_flat"]["window_min"] == 30
    growing = [sample(m, 500.0 + 10 * m, 2.0 if m != 40 else 6.5) for m in range(1, 61)]
    bad = summarize(growing, SoakConfig(), header, None)
    assert not bad["checks"]["broker_rss_flat"]["ok"]  # +300 MB over the last 30 min of ~950
    lag = bad["checks"]["lag_under_limit"]
    assert (lag["ok"], lag["worst_at_min"], lag["samples_over"]) == (False, 40, 1)
    assert bad["checks"]["broker_rss_under_limit"]["ok"]  # 1,100 MB at most
    assert not bad["ok"]
    bad["all_latency"] = {"count": 0}
    assert "**not met**" in markdown(bad, header, Path("/tmp/soak.jsonl"), Path("/tmp/soak.png"), Path("/tmp/soak.md"))


def test_the_soak_options_default_to_an_hour_at_200_a_sample_a_minute(monkeypatch):
    monkeypatch.delenv("ANTIFRAUD_SIMULATOR_RATE", raising=False)
    config = parse([])
    assert (config.minutes, config.every_s, config.rate) == (60.0, 60.0, 200.0)
    assert config.plot == PROJECT_ROOT / "docs" / "img" / "soak.png"
    monkeypatch.setenv("ANTIFRAUD_SIMULATOR_RATE", "50")
    assert parse(["--minutes", "3"]).rate == 50.0
