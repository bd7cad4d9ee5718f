"""The Faust application: one app for every stage, configured from settings and topics.yaml.

Agents live in agents/, one module per stage, and reach topics and tables only through
`source_topic()`, `sink_topic()`, `outbox()` and `table()` here, which take names from the catalog.
Run it with `antifraud worker`.
"""

from __future__ import annotations

import logging
import time
import weakref

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.streams import _current_event
from prometheus_client import REGISTRY

from streams import metrics
from streams.catalog import get_catalog
from streams.faust_transport import broker_urls
from streams.live_first import LiveFirst
from streams.outbox import Outbox
from streams.settings import get_settings

settings = get_settings()
catalog = get_catalog()

app = faust.App(
    catalog.app_id,
    broker=broker_urls(settings.kafka_bootstrap_servers or "127.0.0.1:9092"),
    store="rocksdb://",
    datadir=str(settings.run_dir / "faust" / settings.worker_name),
    # At-least-once, and every side effect is idempotent (docs/reliability.md says why not exactly-once).
    processing_guarantee="at_least_once",
    producer_compression_type="lz4",
    producer_linger_ms=settings.producer_linger_ms,
    producer_max_batch_size=settings.producer_max_batch_bytes,
    broker_max_poll_records=settings.stream_max_poll_records,
    consumer_max_fetch_size=settings.stream_max_fetch_bytes,
    broker_session_timeout=settings.broker_session_timeout_s,
    broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
    consumer_auto_offset_reset="earliest",
    # Topics are created from topics.yaml by `antifraud topics apply`, never by Faust.
    topic_allow_declare=False,
    topic_disable_leader=False,
    table_standby_replicas=0,
    web_enabled=False,  # metrics are served by prometheus_client (streams.metrics)
    autodiscover=False,
)
live_first = LiveFirst(settings.background_loop_share)
app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(REGISTRY, "faust"))


def _raw_topic(names: list[str], partitions: int) -> faust.TopicT:
    # Raw bytes in and out: decoding is msgspec's job (fast, strict), not Faust's codecs.
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def source_topic(*topic_ids: str) -> faust.TopicT:
    specs = [catalog.topic(topic_id) for topic_id in topic_ids]
    return _raw_topic([s.name for s in specs], partitions=max(s.partitions for s in specs))


def sink_topic(topic_id: str) -> faust.TopicT:
    spec = catalog.topic(topic_id)
    return _raw_topic([spec.name], partitions=spec.partitions)


def table(table_name: str, value_type: type | None = None, **options) -> faust.Table:
    """A Faust table whose changelog is the catalog's changelog topic for it.

    `value_type=bytes` keeps values as the bytes the stage encodes itself (msgspec): a large
    state then costs one fast encode per write instead of Faust's stdlib json."""
    spec = next((t for t in catalog.of_kind("changelog") if t.table == table_name), None)
    if spec is None:
        raise KeyError(f"topics.yaml has no changelog topic for table {table_name!r}")
    serializer = "raw" if value_type is bytes else "json"
    changelog = app.topic(spec.name, partitions=spec.partitions, key_type=str, value_serializer=serializer)
    return app.Table(table_name, partitions=spec.partitions, changelog_topic=changelog, key_type=str,
                     value_type=value_type, options=store_options(), **options)


def store_options() -> dict:
    """RocksDB sizes of one table partition's store: one store per table and partition, so
    Faust's defaults (64 MB memtables x 3, a 2 GB block cache, each) are per store."""
    mb = 1024 * 1024
    return {"write_buffer_size": settings.table_write_buffer_mb * mb, "max_write_buffer_number": 2,
            "block_cache_size": settings.table_block_cache_mb * mb}


def outbox() -> Outbox:
    """A micro-batch's outgoing records, sent together as one record batch per partition."""
    return Outbox(app)


def write_tables_for(event: faust.EventT) -> None:
    """Point Faust's table writes (and reads) at `event`'s partition.

    Faust routes a table update to the changelog and store partition of the *current
    event*, a context variable. In a micro-batch that is whatever the stream saw last,
    possibly another partition, and a restarted worker would recover the key into the
    wrong one. Only the context variable is set: take_events() reads the stream's own
    `current_event` attribute to fill its buffer, and changing that loses events.
    """
    _current_event.set(weakref.ref(event))


async def timed_batches(stream: faust.StreamT, stage: str, size: int, within: float, *, background: bool = False):
    """The stage's micro-batches; each is timed from hand-over until the stage asks for the next.

    A `background` stage (the reference path) takes its batches one at a time with the other
    background stages and yields the loop to live ones while they have traffic (streams.live_first).

    A batch's events are acknowledged only when the stage asks for the next batch, i.e.
    after it has processed (and sent for) all of them: at-least-once holds. Faust's
    take_events acknowledges a batch in a `finally`, so also when the stage never finished
    it (the worker stopping mid-batch, a rebalance revoking the partition, an exception):
    the commit on the way out then passed records that were never processed, and they were
    lost (tests/streams/test_worker.py). Its acknowledgements are let through only for a
    batch the stage asked past.
    """
    finished = False
    faust_ack = stream.ack

    async def ack_when_finished(event: faust.EventT) -> bool:
        return await faust_ack(event) if finished else False

    stream.ack = ack_when_finished  # take_events calls self.ack: the instance attribute wins
    async for batch in stream.take_events(size, within=within):
        finished = False
        if background:
            await live_first.take_turn()
        started = time.perf_counter()
        try:
            yield batch  # an exception or a close here leaves `finished` False: nothing of it is acknowledged
            finished = True
        finally:
            took = time.perf_counter() - started
            if background:
                await live_first.end_turn(took if finished else 0.0)
            else:
                live_first.live_seen()
        metrics.BATCH_SECONDS.labels(stage).observe(took)


def quiet_framework_loggers() -> None:
    # `faust worker` leaves these at DEBUG; building discarded records costs ~16 % CPU.
    for name in ("faust", "aiokafka", "mode", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
