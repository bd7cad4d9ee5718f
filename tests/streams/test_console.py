"""The console's summary shows not-UTF-8 records per source and internal errors per stage."""

from __future__ import annotations

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


def test_not_utf8_by_source_and_internal_errors_by_stage_are_shown():
    registry = CollectorRegistry()
    invalid = Counter("antifraud_events_invalid_total", "", ["source", "reason"], registry=registry)
    invalid.labels("in_bank", "not_utf8").inc(3)
    invalid.labels("in_bank", "not_json").inc(2)
    invalid.labels("in_telecom", "not_utf8").inc(1)
    Counter("antifraud_internal_errors_total", "", ["stage", "error"], registry=registry).labels(
        "enrich", "KeyError").inc()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        platform = Platform([Child("worker-1", f"http://127.0.0.1:{server.server_port}/metrics")])
        sections = summarize(platform)
        assert sections["not UTF-8 by source"] == {"in_bank": 3.0, "in_telecom": 1.0}
        assert sections["internal errors by stage"] == {"enrich": 1.0}
        assert "not UTF-8 by source: in_bank=3, in_telecom=1" in one_line(platform, sections)
    finally:
        server.shutdown()
        thread.join(5)
