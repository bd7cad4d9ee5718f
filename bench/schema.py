"""JSON Schema of bench-results/<timestamp>.json (schema id antifraud-bench/1).

For readers of the files and for tests/bench/test_bench.py; the bench itself does not
validate (jsonschema is a test dependency only).
"""

_number = {"type": "number", "minimum": 0}
_maybe_number = {"type": ["number", "null"], "minimum": 0}
_resources = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "required": ["cpu_s", "cpu_s_per_1000_events", "peak_rss_mb"],
        "properties": {"cpu_s": _number, "cpu_s_per_1000_events": _maybe_number, "peak_rss_mb": _number,
                       "rss_end_mb": _number, "processes": {"type": "integer", "minimum": 1}},
    },
}
_raw = {
    "type": "object",
    "required": ["records", "seconds", "records_per_s", "mb_per_s", "resources"],
    "properties": {"records": _number, "seconds": _number, "records_per_s": _number, "mb_per_s": _number,
                   "resources": _resources},
}
_drain = {
    "type": "object",
    "required": ["events", "drained", "method", "window_s", "events_in_window", "events_per_s", "resources"],
    "properties": {
        "events": _number,
        "drained": {"type": "boolean"},
        "method": {"enum": ["window", "chain_drain", "drain", "incl_startup", None]},
        "stuck_tail": {"type": ["object", "null"], "additionalProperties": _number},
        "window_s": _number,
        "events_in_window": _number,
        "events_per_s": _number,
        "startup_s": _maybe_number,
        "drain_s": _number,
        "drain_events_per_s": _number,
        "flows": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["events", "done_after_s"],
            "properties": {"events": _number, "done_after_s": _maybe_number}}},
        "resources": _resources,
        "workers": {"type": "integer", "minimum": 1},  # worker processes in the group (stages alone: 1)
        "vs_passthrough": _maybe_number,
        "vs_raw_produce_platform": _maybe_number,
    },
}
_stats = {
    "type": "object",
    "required": ["count", "p50_ms", "p95_ms", "p99_ms", "max_ms"],
    "properties": {k: _maybe_number for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")} | {"count": _number},
}

RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "started_at", "finished_at", "machine", "versions", "settings", "config", "references",
                 "reference_load", "stages", "chain", "latency", "peak_rss_mb", "errors", "notes"],
    "properties": {
        "schema": {"const": "antifraud-bench/1"},
        "machine": {
            "type": "object",
            "required": ["cores", "cpu_model", "memory_gb", "os", "load_average"],
            "properties": {"cores": {"type": "integer", "minimum": 1}, "cpu_model": {"type": "string", "minLength": 1},
                           "memory_gb": _number},
        },
        "versions": {
            "type": "object",
            "required": ["python", "faust", "confluent_kafka", "kafka", "valkey"],
            "additionalProperties": {"type": "string"},
        },
        "settings": {"type": "object", "required": ["servers", "stages", "producer_linger_ms"]},
        "config": {"type": "object", "properties": {"workers": {"type": "integer", "minimum": 1}}},
        "references": {
            "type": "object",
            "required": ["raw", "passthrough"],
            "properties": {
                "raw": {
                    "type": "object",
                    "required": ["produce_batched", "produce_platform", "consume_batched", "consume_platform"],
                    "additionalProperties": _raw,
                },
                "passthrough": _drain,
            },
        },
        "reference_load": {
            "type": "object",
            "required": ["records", "produce_s", "produce_per_s", "drain"],
            "properties": {"records": _number, "produce_s": _number, "produce_per_s": _number, "drain": _drain},
        },
        "stages": {
            "type": "array",
            "items": {"anyOf": [
                {"type": "object", "required": ["stage", "skipped"]},
                {"allOf": [_drain, {"type": "object", "required": ["stage"]}]},
            ]},
        },
        "chain": _drain,
        "latency": {
            "type": "object",
            "required": ["measured_to", "label", "steps", "p99_over_1s_at_rate"],
            "properties": {
                "measured_to": {"enum": ["actions", "alerts", "signals_enriched", "normalized"]},
                "p99_over_1s_at_rate": _maybe_number,
                "workers": {"type": "integer", "minimum": 1},
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["offered_rate", "achieved_rate", "events_offered", "drained", "all", "by_tier",
                                     "resources"],
                        "properties": {"offered_rate": _number, "achieved_rate": _number, "events_offered": _number,
                                       "all": _stats, "by_tier": {"type": "object", "additionalProperties": _stats},
                                       "resources": _resources},
                    },
                },
            },
        },
        "peak_rss_mb": {"type": "object", "additionalProperties": _number},
        "errors": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}
