"""Prometheus metrics of the channel workers.

Labels are channels, results, gateways, statuses and policies: never a phone number,
person or action id. The CLI serves the endpoint; this module only defines the series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from streams.metrics import LATENCY_BUCKETS

OUTCOMES = Counter(
    "antifraud_outcomes_total", "Outcomes decided by the channel workers and the desk (replays not counted again)",
    ["channel", "result"],
)
GATEWAY_CALLS = Counter(
    "antifraud_gateway_calls_total", "Calls to a channel gateway, each retry included, by status",
    ["channel", "gateway", "status"],
)
SEND_SECONDS = Histogram(
    "antifraud_channel_send_seconds", "Time of one send through the gateway, retries included",
    ["channel"], buckets=LATENCY_BUCKETS,
)
HELD = Counter(
    "antifraud_channel_held_total", "Actions held (delayed, not dropped) by a contact policy",
    ["channel", "policy"],
)
HELD_PENDING = Gauge(
    "antifraud_channel_held_pending", "Actions waiting in the channel's held set right now", ["channel"]
)
DEAD_LETTERS = Counter(
    "antifraud_channel_dead_letters_total", "Action messages a channel worker could not read", ["channel"]
)
CIRCUIT_OPEN = Gauge(
    "antifraud_gateway_circuit_open", "1 while the channel's gateway circuit is open (sends fail at once)",
    ["channel"],
)
VISITS_CARRIED = Counter(
    "antifraud_channel_visits_carried_total",
    "Police visits not sent because the visit under way for the same person carried them (one officer, "
    "several alerts)", [],
)
