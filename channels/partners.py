"""Reference consumers of the partner side: what a bank and a carrier do with the platform's requests.

    antifraud.bank-requests.<bank> ──verify, apply──> antifraud.bank-acks     (signed BankAck)
    antifraud.actions.line-suspension ──verify──────> antifraud.carrier-acks  (signed CarrierAck)

A partner trusts nothing it cannot verify: a request that does not decode, whose
signature does not match the partner's key, that is addressed to another partner or has
expired is rejected, with the reason, in a signed ack; nothing is applied. A valid
request is applied and acked. The measures are kept in memory: a real bank or carrier
applies them in its core system. Offsets are committed after the ack is delivered, and a
request redelivered after a crash is answered again with the same ack status.

`bank_consumer_main(settings, "ICBC")` and `carrier_consumer_main(settings, "china_mobile")`
run until SIGTERM/SIGINT (or until `stop` is set, when run in a thread).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer
from prometheus_client import Counter

from streams.catalog import get_catalog
from streams.contracts.dissuasion import (
    AckStatus,
    BankAck,
    BankRequest,
    CarrierAck,
    CarrierRequest,
    RejectReason,
    RequestKind,
)
from streams.isolation import about_a_record
from streams.kafka import consumer_config, producer_config
from streams.routing import bank_key, bank_topic_id, carrier_key, get_partners
from streams.settings import Settings
from streams.shutdown import stop_on_signals
from streams.signing import signed, verify

log = logging.getLogger(__name__)

PARTNER_REQUESTS = Counter(
    "antifraud_partner_requests_total", "Requests a reference partner consumer answered, by status", ["partner", "status"]
)
ENCODE = msgspec.json.Encoder().encode


class Rejected(Exception):
    def __init__(self, reason: RejectReason):
        self.reason = reason


@dataclass
class MeasureBook:
    """What is in force at this partner: (account or phone, alert_ref) -> expires_at, and the requests
    already carried out, so a redelivered one gets the same answer."""

    in_force: dict[tuple[str, str], datetime] = field(default_factory=dict)
    answered: dict[str, AckStatus] = field(default_factory=dict)


def _read(raw_bytes: bytes, contract: type, key: bytes, partner: str, partner_field: str, now: datetime):
    """The request if it may be acted on; Rejected(reason) otherwise. Verification is over the JSON received."""
    try:
        raw = json.loads(raw_bytes)
        request = msgspec.convert(raw, contract)
        genuine = verify(raw, key)
    except Exception as exc:  # any bytes: not UTF-8, not JSON, too deep, not the contract
        if not about_a_record(exc):
            raise
        raise Rejected(RejectReason.malformed) from None
    if not genuine:
        raise Rejected(RejectReason.bad_signature)
    if getattr(request, partner_field) != partner:
        raise Rejected(RejectReason.wrong_partner)
    if request.expires_at <= now:
        raise Rejected(RejectReason.expired)
    return request


def _request_id_of(raw_bytes: bytes, where: str) -> str:
    try:
        value = json.loads(raw_bytes).get("request_id")
    except (ValueError, TypeError, AttributeError, RecursionError):
        return where
    return value if isinstance(value, str) and value else where


def judge_bank_request(raw_bytes: bytes, bank: str, key: bytes, book: MeasureBook, now: datetime, where: str) -> BankAck:
    """Verify and apply one BankRequest; the signed ack to send back."""
    kind, status, reason = None, AckStatus.rejected, None
    try:
        request = _read(raw_bytes, BankRequest, key, bank, "bank", now)
        kind = request.kind
        status = book.answered.get(request.request_id) or _apply_bank(request, book)
        book.answered[request.request_id] = status
    except Rejected as rejected:
        reason = rejected.reason
    ack = BankAck(request_id=_request_id_of(raw_bytes, where), bank=bank, kind=kind, status=status,
                  acked_at=now.replace(microsecond=0), signature="", reason=reason)
    return signed(ack, key)


def _apply_bank(request: BankRequest, book: MeasureBook) -> AckStatus:
    measure = (request.account, request.alert_ref)
    if request.kind is RequestKind.apply:
        book.in_force[measure] = request.expires_at
        return AckStatus.applied
    if measure not in book.in_force:
        raise Rejected(RejectReason.not_in_force)
    if request.kind is RequestKind.renew:
        book.in_force[measure] = request.expires_at
        return AckStatus.renewed
    del book.in_force[measure]
    return AckStatus.released


def judge_carrier_request(raw_bytes: bytes, carrier: str, key: bytes, book: MeasureBook, now: datetime,
                          where: str) -> CarrierAck:
    """Verify and apply one CarrierRequest (suspend the line until it expires); the signed ack."""
    status, reason = AckStatus.rejected, None
    try:
        request = _read(raw_bytes, CarrierRequest, key, carrier, "carrier", now)
        book.in_force[(request.phone, request.alert_ref)] = request.expires_at
        status = book.answered[request.request_id] = AckStatus.applied
    except Rejected as rejected:
        reason = rejected.reason
    ack = CarrierAck(request_id=_request_id_of(raw_bytes, where), carrier=carrier, status=status,
                     acked_at=now.replace(microsecond=0), signature="", reason=reason)
    return signed(ack, key)


# ------------------------------------------------------------------------------ the loop
def bank_consumer_main(settings: Settings, bank_code: str, stop: threading.Event | None = None) -> None:
    partners = get_partners(settings)
    if bank_code not in partners.banks:
        raise SystemExit(f"unknown bank {bank_code!r}; banks.yaml lists {', '.join(partners.banks)}")
    key = bank_key(settings, partners, bank_code)  # this bank's key only: it holds no other
    book = MeasureBook()
    _serve(settings, bank_topic_id(bank_code), "bank_acks", f"antifraud-bank-{bank_code.lower()}", bank_code,
           lambda raw, now, where: judge_bank_request(raw, bank_code, key, book, now, where), stop)


def carrier_consumer_main(settings: Settings, carrier: str, stop: threading.Event | None = None) -> None:
    partners = get_partners(settings)
    if carrier not in partners.carriers:
        raise SystemExit(f"unknown carrier {carrier!r}; banks.yaml lists {', '.join(partners.carriers)}")
    key = carrier_key(settings, partners, carrier)
    book = MeasureBook()

    def judge(raw: bytes, now: datetime, where: str) -> CarrierAck | None:
        # One topic carries every carrier's requests: answer only those addressed to us.
        try:
            if json.loads(raw).get("carrier") not in (carrier, None):
                return None
        except (ValueError, TypeError, AttributeError, RecursionError):
            pass
        return judge_carrier_request(raw, carrier, key, book, now, where)

    _serve(settings, "actions_line_suspension", "carrier_acks", f"antifraud-carrier-{carrier}", carrier, judge, stop)


def _serve(settings: Settings, topic_id: str, ack_topic_id: str, group: str, partner: str,
           judge: Callable[[bytes, datetime, str], msgspec.Struct | None], stop: threading.Event | None) -> None:
    if stop is None:  # a process of its own (antifraud bank-consumer): signals stop it, metrics are served
        from streams.metrics import serve_metrics

        stop = stop_on_signals()
        serve_metrics(settings.metrics_port, settings.metrics_host)
    catalog = get_catalog(settings.topics_file)
    topic, ack_topic = catalog.topic(topic_id).name, catalog.topic(ack_topic_id).name
    consumer = Consumer(consumer_config(settings, group))
    producer = Producer(producer_config(settings))
    consumer.subscribe([topic])
    log.info("%s: reading %s, acking on %s", partner, topic, ack_topic)
    try:
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                log.warning("%s: %s", partner, message.error())
                continue
            where = f"{message.topic()}:{message.partition()}:{message.offset()}"
            ack = judge(message.value() or b"", datetime.now(UTC), where)
            if ack is not None:
                PARTNER_REQUESTS.labels(partner, ack.status.value).inc()
                producer.produce(ack_topic, key=ack.request_id.encode(), value=ENCODE(ack))
                if producer.flush(30) != 0:
                    raise KafkaException(f"{partner}: ack for {ack.request_id} not delivered")
                if ack.status is AckStatus.rejected:
                    log.warning("%s: rejected %s: %s", partner, where, ack.reason.value if ack.reason else "")
            consumer.commit(message, asynchronous=False)
    finally:
        consumer.close()
        producer.flush(10)
