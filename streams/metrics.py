"""Prometheus metrics shared by every process, and the endpoint that serves them.

Label values are topic ids, stages, reasons, tiers and channels: never a phone number,
account or name (see streams.masking for what may appear in logs).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

log = logging.getLogger(__name__)

# The _created series double every counter on the console and in Prometheus for nothing we use.
disable_created_metrics()

# Seconds; a funds warning must reach a dissuader in seconds, so resolution sits there.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

EVENTS_IN = Counter("antifraud_events_in_total", "Input messages read, by input topic id", ["source"])
EVENTS_ACCEPTED = Counter("antifraud_events_accepted_total", "Input messages validated and normalized", ["source"])
EVENTS_INVALID = Counter(
    "antifraud_events_invalid_total", "Input messages dead-lettered, by reason", ["source", "reason"]
)
DUPLICATES = Counter("antifraud_duplicates_total", "Input messages dropped as a repeated event_id", ["source"])
STAGE_LATENCY = Histogram(
    "antifraud_stage_latency_seconds",
    "From the input record's broker timestamp to the stage's output, per stage",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "antifraud_stage_batch_seconds", "Processing time of one micro-batch, per stage", ["stage"], buckets=LATENCY_BUCKETS
)
INGEST_TALLY = Gauge(
    "antifraud_ingest_tally",
    "Exact, restart-proof ingest counts from the ingest_tally table",
    ["source", "outcome"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Start this process's /metrics endpoint; returns the bound port (port 0 = any free one)."""
    server, _thread = start_http_server(port, addr=host)
    bound = server.server_port
    log.info("metrics on http://127.0.0.1:%d/metrics", bound)
    return bound
