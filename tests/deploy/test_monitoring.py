"""Ops monitoring: Prometheus config and alerting rules (promtool), and the Grafana dashboard.

promtool comes from Debian's `prometheus` package. Without it these tests skip (apt-get
install prometheus); under CI=true they fail instead, so CI cannot pass without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration  # runs Prometheus' promtool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = Path(__file__).parent / "rules_test.yml"
GRAFANA = ROOT / "deploy" / "grafana" / "antifraud.json"

# Metric names the platform's stages export (some stages may not be in this tree yet).
PLATFORM_METRICS = {
    "antifraud_events_in_total", "antifraud_events_invalid_total", "antifraud_duplicates_total",
    "antifraud_stage_latency_seconds", "antifraud_alerts_total", "antifraud_alerts_suppressed_total",
    "antifraud_waiting_on_valkey", "antifraud_actions_total", "antifraud_outcomes_total",
    "antifraud_gateway_circuit_open", "antifraud_sla_breaches_total", "antifraud_escalations_total",
    "antifraud_dissuasion_closed_alerts", "antifraud_dissuasion_dissuaded_alerts", "antifraud_bank_requests_total", "antifraud_events_accepted_total",
}
METRIC = re.compile(r"\b((?:antifraud|faust)_[a-z0-9_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing (CI=true: these checks must run): apt-get install prometheus")
    pytest.skip("promtool is missing: apt-get install prometheus")


def run(*args: str) -> str:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def exported_metrics() -> set[str]:
    """Every antifraud_* name a metric is created with in the code, plus the platform's list."""
    names = set(PLATFORM_METRICS)
    for package in ("streams", "agents", "channels", "oversight", "simulator"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"[\"'](antifraud_[a-z0-9_]+)[\"']", path.read_text()))
    return names


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def rule_expressions() -> dict[str, str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["expr"] for group in rules["groups"] for r in group["rules"]}


def dashboard_expressions() -> list[str]:
    panels = json.loads(GRAFANA.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


# ------------------------------------------------------------------ promtool
def test_prometheus_config_is_valid_and_loads_the_rules():
    out = run("check", "config", str(PROMETHEUS))
    assert "1 rule files found" in out
    assert yaml.safe_load(PROMETHEUS.read_text())["rule_files"] == ["rules.yml"]


def test_rules_are_valid():
    run("check", "rules", str(RULES))


def test_rules_fire_as_intended():
    run("test", "rules", str(RULE_TESTS))


def test_every_dashboard_expression_is_valid_promql(tmp_path):
    exprs = [e.replace("$__rate_interval", "5m") for e in dashboard_expressions()]
    probe = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr_{n}", "expr": e}
                                                        for n, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(probe))
    run("check", "rules", str(path))


# ------------------------------------------------------------------ content
def test_rules_cover_what_ops_must_be_told():
    names = set(rule_expressions())
    for required in ("AntifraudConsumerLagHigh", "AntifraudDeadLetterRateHigh", "AntifraudEnrichmentStalled",
                     "AntifraudSlaBreaches", "AntifraudFundsWarningSlaBreach", "AntifraudGatewayCircuitOpen",
                     "AntifraudSuccessRateBelowTarget"):
        assert required in names
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_rules_and_dashboard_name_only_exported_metrics():
    known = exported_metrics()
    for expr in [*rule_expressions().values(), *dashboard_expressions()]:
        for name in METRIC.findall(expr):
            if name.startswith("faust_"):
                continue  # Faust's own sensor (streams/app.py)
            assert base_name(name) in known, f"{name} is not exported by the platform"


def test_grafana_dashboard_is_well_formed():
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("consumer lag", "dead-lettered", "success rate", "sla breaches", "circuit", "ledger"):
        assert topic in titles
