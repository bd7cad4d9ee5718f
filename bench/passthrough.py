"""The reference Faust agent: decode, send. Nothing else.

A tiny separate Faust app (its own app id, its own bench-only topics) run as a real
process by the bench, with the platform's broker settings: the same tuned transport
(fetch wait), linger and session timeout; like the platform's sinks it batches
(only changelogs need one record per batch, and it has no table). Its rate is what
Faust itself costs per event on this machine; a stage's rate divided by it says how
much the stage adds (or, with micro-batching, saves).

    python -m bench.passthrough    # reads KAFKA_BOOTSTRAP_SERVERS and ANTIFRAUD_* settings
"""

from __future__ import annotations

import faust
import msgspec

from bench.config import PASSTHROUGH_APP_ID, PASSTHROUGH_IN, PASSTHROUGH_OUT
from streams.faust_transport import broker_urls
from streams.settings import get_settings


def build_app() -> faust.App:
    settings = get_settings()
    app = faust.App(
        PASSTHROUGH_APP_ID,
        broker=broker_urls(settings.kafka_bootstrap_servers or "127.0.0.1:9092"),
        store="memory://",
        datadir=str(settings.run_dir / "faust" / "passthrough"),
        processing_guarantee="at_least_once",
        producer_linger_ms=settings.producer_linger_ms,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,  # the bench creates its topics
        web_enabled=False,
        autodiscover=False,
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    source = app.topic(PASSTHROUGH_IN, **raw)
    sink = app.topic(PASSTHROUGH_OUT, **raw)
    decode, encode = msgspec.json.decode, msgspec.json.encode

    @app.agent(source, name="passthrough")
    async def passthrough(stream):
        # One event at a time, the way a first Faust agent is written.
        async for event in stream.events():
            try:
                value = encode(decode(event.value))
            except (msgspec.DecodeError, TypeError):
                value = event.value  # the mix's malformed messages: passed on as they came
            await sink.send(key=event.key, value=value)

    return app


def main() -> None:
    import logging

    from faust.worker import Worker

    settings = get_settings()
    (settings.run_dir / "faust" / "passthrough").mkdir(parents=True, exist_ok=True)
    app = build_app()

    @app.task
    async def _quiet() -> None:
        # As streams.app.quiet_framework_loggers does for the platform (not imported: that
        # module builds the platform's own Faust app). `faust worker` leaves them at DEBUG.
        for name in ("faust", "aiokafka", "mode", "kafka"):
            logging.getLogger(name).setLevel(logging.WARNING)

    logging.basicConfig(level=settings.log_level.upper())
    Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
