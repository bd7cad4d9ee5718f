"""The ledger sink (`antifraud ledger`) and its rebuild (`antifraud ledger rebuild`).

    alerts, actions.*, outcomes, escalations, bank/carrier requests and acks,
    norm_case, audits, followup_*  ──>  SQL (oversight.schema)

The sink reads every topic whose contract oversight.records knows (asked from the
catalog, never spelt), in one consumer group. A batch is written in one transaction and
its offsets are committed only after that transaction: a crash re-reads the batch and
the writes, keyed by each record's own id, change nothing the second time.

The rebuild replays the same topics from their beginning into an empty database and
stops at the end offsets it found when it started; it writes exactly what the sink
would (same rows, same derived statuses).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from oversight import schema
from oversight.db import database_url, migrate
from oversight.records import RECORD_KINDS, Decoded, RecordKind, decode
from oversight.writer import write_batch
from streams.catalog import Catalog, TopicSpec, get_catalog
from streams.kafka import consumer_config
from streams.metrics import LATENCY_BUCKETS
from streams.settings import Settings
from streams.shutdown import stop_on_signals

log = logging.getLogger(__name__)

RECORDS = Counter("antifraud_ledger_records_total", "Records written to the ledger, by contract", ["kind"])
UNREADABLE = Counter(
    "antifraud_ledger_unreadable_total", "Records the ledger could not decode (skipped), by topic id", ["topic"]
)
UNWRITABLE = Counter(
    "antifraud_ledger_unwritable_total", "Records the database refused (skipped), by contract", ["kind"]
)
BATCH_SECONDS = Histogram("antifraud_ledger_batch_seconds", "One ledger transaction", buckets=LATENCY_BUCKETS)
LAG = Gauge("antifraud_ledger_lag_records", "Records on the ledger's topics not yet written, by topic id", ["topic"])
WAITING_ON_DATABASE = Gauge("antifraud_ledger_waiting_on_database", "1 while the ledger retries an unreachable database")


def ledger_topics(catalog: Catalog) -> list[TopicSpec]:
    return [spec for spec in catalog.topics.values() if spec.contract in RECORD_KINDS]


def ledger_group(catalog: Catalog) -> str:
    return f"{catalog.app_id}-ledger"


@dataclass
class Reader:
    """Decodes a polled message of any ledger topic; skips (and counts) what it cannot read."""

    catalog: Catalog
    kinds: dict[str, tuple[str, RecordKind]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in ledger_topics(self.catalog):
            self.kinds[spec.name] = (spec.id, RECORD_KINDS[spec.contract])

    @property
    def topic_names(self) -> list[str]:
        return sorted(self.kinds)

    def decode(self, message) -> Decoded | None:
        topic_id, kind = self.kinds[message.topic()]
        try:
            return decode(kind, message.value())
        except Exception as exc:  # any bytes: counted and skipped, never a stopped sink (but MemoryError)
            if isinstance(exc, MemoryError):
                raise
            # The record's content may be personal data: name the place, not the value.
            UNREADABLE.labels(topic_id).inc()
            log.error("ledger: unreadable %s record at %s[%d]@%d skipped: %s", kind.name, topic_id,
                      message.partition(), message.offset(), type(exc).__name__)
            return None


def write_with_retry(engine: Engine, batch: list[Decoded], stop: threading.Event | None = None) -> bool:
    """Write one batch; while the database is unreachable, retry (offsets hold). False if stopped.

    A record the database refuses (a value too long for its column, say) must not block the
    rest: the batch is then written record by record and the refused one is logged and counted.
    """
    backoff = 0.1
    while True:
        try:
            started = time.perf_counter()
            with engine.begin() as conn:
                write_batch(conn, batch)
            BATCH_SECONDS.observe(time.perf_counter() - started)
            WAITING_ON_DATABASE.set(0)
            for decoded in batch:
                RECORDS.labels(decoded.kind.name).inc()
            return True
        except (IntegrityError, DataError) as exc:
            if len(batch) > 1:
                return all(write_with_retry(engine, [one], stop) for one in batch)
            UNWRITABLE.labels(batch[0].kind.name).inc()
            log.error("ledger: the database refused a %s record (%s); skipped", batch[0].kind.name,
                      type(exc.orig).__name__)
            return True
        except OperationalError as exc:
            WAITING_ON_DATABASE.set(1)
            log.warning("ledger: database unreachable (%s), retry in %.1f s", type(exc.orig).__name__, backoff)
            if stop is not None and stop.wait(backoff):
                return False
            if stop is None:
                time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def _messages(consumer: Consumer, reader: Reader, settings: Settings) -> tuple[list, list[Decoded]]:
    polled = consumer.consume(num_messages=settings.ledger_batch_size, timeout=settings.ledger_poll_s)
    good, decoded = [], []
    for message in polled:
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                log.warning("ledger: consumer error %s", message.error())
            continue
        good.append(message)
        record = reader.decode(message)
        if record is not None:
            decoded.append(record)
    return good, decoded


# ------------------------------------------------------------------------------ the sink
class LedgerSink:
    def __init__(self, settings: Settings, engine: Engine, catalog: Catalog | None = None,
                 group_id: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = catalog or get_catalog(settings.topics_file)
        self.reader = Reader(self.catalog)
        self.consumer = Consumer(consumer_config(settings, group_id=group_id or ledger_group(self.catalog)))
        self.subscribed = False
        self._last_lag = 0.0

    def subscribe(self) -> None:
        if not self.subscribed:
            self.consumer.subscribe(self.reader.topic_names)
            self.subscribed = True

    def close(self) -> None:
        self.consumer.close()

    def run(self, stop: threading.Event) -> None:
        self.subscribe()
        log.info("ledger: reading %d topics into %s", len(self.reader.topic_names),
                 self.engine.url.render_as_string(hide_password=True))
        try:
            while not stop.is_set():
                self.step(stop)
        finally:
            self.consumer.close()

    def step(self, stop: threading.Event | None = None) -> int:
        """One poll, one transaction, one commit; returns the records read."""
        self.subscribe()
        messages, decoded = _messages(self.consumer, self.reader, self.settings)
        if not messages:
            self._report_lag()
            return 0
        if decoded and not write_with_retry(self.engine, decoded, stop):
            return 0  # stopping: nothing committed, the batch is read again next time
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance took the partitions: whoever gets them re-reads
            log.warning("ledger: commit failed (%s); the batch will be read again, without effect", exc)
        self._report_lag()
        return len(messages)

    def _report_lag(self, every_s: float = 5.0) -> None:
        if time.monotonic() - self._last_lag < every_s:
            return
        self._last_lag = time.monotonic()
        lag: dict[str, int] = {}
        for tp in self.consumer.position(self.consumer.assignment()):
            _, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
            topic_id = self.reader.kinds[tp.topic][0]
            if tp.offset >= 0 and high >= 0:
                lag[topic_id] = lag.get(topic_id, 0) + max(0, high - tp.offset)
        for topic_id, value in lag.items():
            LAG.labels(topic_id).set(value)


def run_ledger(settings: Settings, stop: threading.Event | None = None) -> None:
    """`antifraud ledger`: migrate the database to head, then sink until stopped (SIGTERM/SIGINT)."""
    stop = stop or stop_on_signals()
    engine = migrate(settings)
    LedgerSink(settings, engine).run(stop)
    engine.dispose()


# ------------------------------------------------------------------------------ rebuild
class LedgerNotEmpty(RuntimeError):
    pass


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return all(conn.execute(select(func.count()).select_from(t)).scalar_one() == 0 for t in schema.REBUILT_TABLES)


def rebuild(settings: Settings, url: str | None = None, idle_s: float = 1.0,
            catalog: Catalog | None = None) -> dict[str, int]:
    """`antifraud ledger rebuild`: replay every ledger topic into an empty database; returns records per kind."""
    url = url or database_url(settings)
    engine = migrate(settings, url)
    try:
        if not is_empty(engine):
            raise LedgerNotEmpty(f"{engine.url.render_as_string(hide_password=True)} already holds ledger records; "
                                 "rebuild into an empty database (DATABASE_URL or --database-url)")
        catalog = catalog or get_catalog(settings.topics_file)
        reader = Reader(catalog)
        consumer = Consumer(consumer_config(settings, group_id=f"{ledger_group(catalog)}-rebuild-{uuid.uuid4().hex[:8]}",
                                            **{"enable.partition.eof": False}))
        try:
            return _replay(consumer, reader, engine, settings, idle_s)
        finally:
            consumer.close()
    finally:
        engine.dispose()


def _replay(consumer: Consumer, reader: Reader, engine: Engine, settings: Settings, idle_s: float) -> dict[str, int]:
    ends: dict[tuple[str, int], int] = {}
    partitions = []
    for name in reader.topic_names:
        meta = consumer.list_topics(name, timeout=10).topics[name]
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
            ends[(name, p)] = high
            partitions.append(TopicPartition(name, p, OFFSET_BEGINNING))
    consumer.assign(partitions)
    positions = {key: 0 for key in ends}
    counts: dict[str, int] = {}
    reached_at = None
    while True:
        messages, decoded = _messages(consumer, reader, settings)
        for message in messages:
            positions[(message.topic(), message.partition())] = message.offset() + 1
        if decoded:
            write_with_retry(engine, decoded)
            for d in decoded:
                counts[d.kind.name] = counts.get(d.kind.name, 0) + 1
        if reached_at is None and all(positions[key] >= end for key, end in ends.items()):
            reached_at = time.monotonic()
        # Past the end offsets found at start: stop at the first empty poll, or after idle_s
        # on a busy topic. (Reading on a little also catches records a quirky watermark understated.)
        if reached_at is not None and (not messages or time.monotonic() - reached_at >= idle_s):
            break
    log.info("ledger rebuild: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no records")
    return counts
