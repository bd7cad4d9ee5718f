"""`antifraud audit`: every case report (norm_case) whose victim had an alert in the look-back
becomes an AuditRecord on the audits topic (the ledger stores it, the console shows it).

The victim is resolved to a person the way enrichment does (the Valkey registry: phone or
account -> person id, else the derived id of an unregistered resident), and also by the
ledger's own alerts for that phone or account. Before judging, the worker waits (up to
audit_ledger_wait_s) until the ledger has written everything that was on its topics when
the case arrived, so the audit sees the latest outcomes. Offsets are committed after the
audit is delivered; a replay repeats the same audit id, which the ledger keeps once.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import msgspec
import redis
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from prometheus_client import Counter
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from oversight import schema
from oversight.audit import build_audit
from oversight.contracts import AuditRecord
from oversight.db import migrate
from oversight.ledger import ledger_group, ledger_topics
from oversight.status import alerts_of_case
from streams.catalog import Catalog, get_catalog
from streams.contracts import CaseReport, DeadLetterReason, Ingested
from streams.contracts.reference import IdentifierKind
from streams.dead_letters import Rejected, decode_failure, of_kafka_message
from streams.isolation import about_a_record, record_failed
from streams.kafka import consumer_config, end_offsets, producer_config
from streams.reference import decode_record, derived_person_id, registry_key
from streams.settings import Settings
from streams.shutdown import stop_on_signals
from streams.valkey import VALKEY_OUTAGE_ERRORS, sync_client

log = logging.getLogger(__name__)

AUDITS = Counter("antifraud_audits_total", "Case reports audited, by result (audited, not_warned)", ["result"])
FINDINGS = Counter("antifraud_audit_findings_total", "Broken steps found by reverse audits", ["problem", "unit_role"])
DECODE_CASE = msgspec.json.Decoder(Ingested[CaseReport])
ENCODE = msgspec.json.Encoder()


def read_case(value: bytes | None) -> CaseReport | Rejected:
    """The case report of a norm_case record, or why not: any bytes, never an exception (but MemoryError)."""
    if not value:
        return Rejected(DeadLetterReason.empty, "empty message")
    try:
        return DECODE_CASE.decode(value).event
    except Exception as exc:
        if not about_a_record(exc):
            raise
        return decode_failure(exc, value)


def persons_of_victim(registry: redis.Redis | None, case: CaseReport) -> set[str]:
    """Person ids for the victim's phone and account, as enrichment resolves them."""
    persons = set()
    for kind, identifier in ((IdentifierKind.phone, case.victim_phone), (IdentifierKind.account, case.victim_account)):
        if not identifier:
            continue
        record = None
        if registry is not None:
            key = registry_key(kind, identifier)
            record = decode_record(key, _get_until_answered(registry, key))
        persons.add(record.person_id if record is not None else derived_person_id(identifier))
    return persons


def _get_until_answered(registry: redis.Redis, key: str, max_backoff_s: float = 5.0):
    backoff = 0.05
    while True:
        try:
            return registry.get(key)
        except VALKEY_OUTAGE_ERRORS:
            log.warning("audit: Valkey unreachable, retry in %.1f s", backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)


class LedgerProgress:
    """Has the ledger's group committed past these end offsets yet?"""

    def __init__(self, settings: Settings, catalog: Catalog, group_id: str | None = None) -> None:
        self.partitions: list[TopicPartition] = []
        self.bootstrap = settings.kafka_bootstrap_servers
        self.client = Consumer(consumer_config(settings, group_id=group_id or ledger_group(catalog)))
        for spec in ledger_topics(catalog):
            if spec.contract not in ("AuditRecord", "Ingested[CaseReport]"):
                self.partitions += [TopicPartition(spec.name, p) for p in range(spec.partitions)]

    def ends(self) -> dict[tuple[str, int], int]:
        return end_offsets(self.bootstrap, self.partitions)

    def wait_past(self, ends: dict[tuple[str, int], int], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            committed = self.client.committed(self.partitions, timeout=10)
            behind = [tp for tp in committed if tp.offset < ends[(tp.topic, tp.partition)]
                      and ends[(tp.topic, tp.partition)] > 0]
            if not behind:
                return True
            if time.monotonic() >= deadline:
                log.warning("audit: ledger still behind on %d partitions after %.0f s; auditing what it has",
                            len(behind), timeout_s)
                return False
            time.sleep(0.25)

    def close(self) -> None:
        self.client.close()


class AuditWorker:
    def __init__(self, settings: Settings, engine: Engine, catalog: Catalog | None = None,
                 group_id: str | None = None, ledger_group_id: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.catalog = catalog or get_catalog(settings.topics_file)
        self.cases = self.catalog.topic("norm_case").name
        self.audits = self.catalog.topic("audits").name
        self.dead_letters = self.catalog.topic("dead_letter").name
        self.consumer = Consumer(consumer_config(settings, group_id=group_id or f"{self.catalog.app_id}-audit"))
        self.producer = Producer(producer_config(settings))
        self.progress = LedgerProgress(settings, self.catalog, ledger_group_id)
        self.registry = sync_client(settings) if settings.redis_url else None
        self.subscribed = False

    def step(self) -> list[AuditRecord]:
        if not self.subscribed:
            self.consumer.subscribe([self.cases])
            self.subscribed = True
        messages = [m for m in self.consumer.consume(num_messages=50, timeout=self.settings.ledger_poll_s)
                    if not m.error()]
        if not messages:
            return []
        ends = self.progress.ends()
        self.progress.wait_past(ends, self.settings.audit_ledger_wait_s)
        published = []
        for message in messages:
            record = self.audit_message(message)
            if record is not None:
                self.producer.produce(self.audits, key=record.case_id.encode(), value=ENCODE.encode(record))
                published.append(record)
        if self.producer.flush(30) != 0:
            raise RuntimeError("audit: records not delivered; offsets not committed")
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # a rebalance: the cases are audited again, with the same audit ids
            log.warning("audit: commit failed (%s)", exc)
        return published

    def audit_message(self, message) -> AuditRecord | None:
        """The audit of one case record; any bytes or a failure on it end as a dead letter, never a stop."""
        case = read_case(message.value())
        if isinstance(case, Rejected):
            log.error("audit: unreadable case report at partition %d offset %d dead-lettered (%s)",
                      message.partition(), message.offset(), case.reason.value)
            self.dead_letter(message, case)
            return None
        try:
            return self.audit(case)
        except (OperationalError, *VALKEY_OUTAGE_ERRORS):
            raise  # the ledger database or Valkey is gone: offsets hold, the restart audits it again
        except Exception as exc:
            if not about_a_record(exc):
                raise
            self.dead_letter(message, record_failed("audit", f"norm_case:{message.partition()}:{message.offset()}", exc))
            return None

    def dead_letter(self, message, rejected) -> None:
        letter = of_kafka_message("audit", message, rejected, datetime.now(UTC), self.settings.max_event_bytes)
        self.producer.produce(self.dead_letters, key=b"audit", value=ENCODE.encode(letter))

    def audit(self, case: CaseReport) -> AuditRecord | None:
        with self.engine.connect() as conn:
            persons = persons_of_victim(self.registry, case)
            for alert_id in alerts_of_case(conn, case.victim_phone, case.victim_account):
                persons |= _person_of_alert(conn, alert_id)
            record = build_audit(conn, case, persons, self.settings.audit_lookback_days,
                                 self.settings.audit_bank_ack_timeout_s)
        AUDITS.labels("audited" if record else "not_warned").inc()
        if record:
            for finding in record.findings:
                FINDINGS.labels(finding.problem.value, finding.unit.partition(":")[0]).inc()
            log.info("audit %s: %d alerts, %d findings", record.audit_id, len(record.alert_ids), len(record.findings))
        return record

    def close(self) -> None:
        self.consumer.close()
        self.progress.close()
        self.producer.flush(10)


def _person_of_alert(conn, alert_id: str) -> set[str]:
    return set(conn.scalars(select(schema.alerts.c.person_id).where(schema.alerts.c.alert_id == alert_id)))


def run_audit(settings: Settings, stop: threading.Event | None = None) -> None:
    """`antifraud audit`: audit every case report until stopped (SIGTERM/SIGINT)."""
    stop = stop or stop_on_signals()
    engine = migrate(settings)
    worker = AuditWorker(settings, engine)
    try:
        while not stop.is_set():
            worker.step()
    finally:
        worker.close()
        engine.dispose()
