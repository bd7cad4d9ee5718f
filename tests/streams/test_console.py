"""The console's summary shows not-UTF-8 records per source and internal errors per stage."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, start_http_server

from streams.console import one_line, summarize


@dataclass
class Child:
    name: str
    metrics_url: str
    process: object = None


@dataclass
class Platform:
    children: list


@contextmanager
def worker_serving(registry: CollectorRegistry):
    """A platform of one worker whose metrics page serves `registry`."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield Platform([Child("worker-1", f"http://127.0.0.1:{server.server_port}/metrics")])
    finally:
        server.shutdown()
        thread.join(5)


def test_not_utf8_by_source_and_internal_errors_by_stage_are_shown():
    registry = CollectorRegistry()
    invalid = Counter("antifraud_events_invalid_total", "", ["source", "reason"], registry=registry)
    invalid.labels("in_bank", "not_utf8").inc(3)
    invalid.labels("in_bank", "not_json").inc(2)
    invalid.labels("in_telecom", "not_utf8").inc(1)
    Counter("antifraud_internal_errors_total", "", ["stage", "error"], registry=registry).labels(
        "enrich", "KeyError").inc()
    with worker_serving(registry) as platform:
        sections = summarize(platform)
        assert sections["not UTF-8 by source"] == {"in_bank": 3.0, "in_telecom": 1.0}
        assert sections["internal errors by stage"] == {"enrich": 1.0}
        assert "not UTF-8 by source: in_bank=3, in_telecom=1" in one_line(platform, sections)


def test_restarts_and_crashed_agents_are_shown():
    from rich.console import Console

    from streams.console import render

    @dataclass
    class Restarted(Child):
        restarts: int = 2
        last_exit: int = 70
        crashed_agents: tuple = ("ingest",)
        restart_at: float = 5.0
        url: str = None

    never = Restarted("ch-sms", "http://127.0.0.1:9/metrics", restarts=0, last_exit=None, crashed_agents=(),
                      restart_at=None)
    platform = Platform([Restarted("worker-1", "http://127.0.0.1:9/metrics"), never])
    line = one_line(platform, {})
    assert "restarts: worker-1=2 (last exit 70; crashed: ingest)" in line
    assert "worker-1 (exited ?, restarting)" in line and "ch-sms=" not in line
    console = Console(width=200, record=True)
    console.print(render(platform, {}))
    assert "2 (last exit 70; crashed: ingest)" in console.export_text()


def test_reach_back_and_retro_alerts_are_shown_per_intel_source():
    registry = CollectorRegistry()
    queued = Counter("antifraud_reach_back_queued_total", "", ["list", "source"], registry=registry)
    queued.labels("fraud_number", "carrier").inc(4)
    queued.labels("mule_account", "bank").inc(1)
    Counter("antifraud_retro_alerts_total", "", ["list", "source"], registry=registry).labels(
        "mule_account", "bank").inc()
    with worker_serving(registry) as platform:
        sections = summarize(platform)
        assert sections["reach-back queued by intel source"] == {"bank": 1.0, "carrier": 4.0}
        assert sections["retro alerts by intel source"] == {"bank": 1.0}
