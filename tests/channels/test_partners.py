"""Reference partner consumers: valid requests are applied and acked, anything unverifiable is rejected.

The consumers run in threads of this process against the session's embedded broker, as
a bank's or carrier's process would; requests are produced directly onto their topics.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from confluent_kafka import Producer

from channels.partners import MeasureBook, bank_consumer_main, carrier_consumer_main, judge_bank_request
from streams.catalog import get_catalog
from streams.contracts.dissuasion import (
    AckStatus,
    BankAck,
    BankMeasure,
    BankReasonCode,
    BankRequest,
    CarrierAck,
    CarrierMeasure,
    CarrierReasonCode,
    CarrierRequest,
    RejectReason,
    RequestKind,
)
from streams.kafka import producer_config
from streams.routing import bank_key, bank_topic_id, carrier_key, get_partners
from streams.signing import signed, verify
from support import Reader

CATALOG = get_catalog()
PARTNERS = get_partners()
ENCODE = msgspec.json.Encoder().encode


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def bank_request(key: bytes, *, kind=RequestKind.apply, account="acct_0001", bank="ICBC", ref="a" * 32,
                 expires_in=timedelta(hours=48)) -> BankRequest:
    now = utcnow()
    return signed(BankRequest(
        request_id=f"br-{uuid.uuid4().hex[:12]}", bank=bank, account=account,
        measures=[BankMeasure.stop_non_counter_business, BankMeasure.protective_stop_payment],
        reason_code=BankReasonCode.transfer_during_alert, alert_ref=ref, issued_at=now - timedelta(hours=1),
        expires_at=now + expires_in, kind=kind, signature="",
    ), key)


def carrier_request(key: bytes, carrier="china_mobile", phone="+8613800000001", expires_in=timedelta(hours=48)):
    now = utcnow()
    return signed(CarrierRequest(
        request_id=f"act-{uuid.uuid4().hex[:12]}", carrier=carrier, phone=phone, measure=CarrierMeasure.suspend_line,
        reason_code=CarrierReasonCode.high_risk_alert, alert_ref="b" * 32, issued_at=now - timedelta(hours=1),
        expires_at=now + expires_in, signature="",
    ), key)


def tampered(request, **changes) -> bytes:
    raw = msgspec.to_builtins(request)
    raw.update(changes)  # after signing: the signature no longer matches
    return json.dumps(raw).encode()


def running(target, settings, code):
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(settings, code, stop), daemon=True)
    thread.start()
    return stop, thread


@pytest.fixture(scope="module")
def icbc(settings):
    stop, thread = running(bank_consumer_main, settings, "ICBC")
    yield bank_key(settings, PARTNERS, "ICBC")
    stop.set()
    thread.join(15)


@pytest.fixture(scope="module")
def china_mobile(settings):
    stop, thread = running(carrier_consumer_main, settings, "china_mobile")
    yield carrier_key(settings, PARTNERS, "china_mobile")
    stop.set()
    thread.join(15)


def send(settings, topic_id: str, records: list[bytes]) -> None:
    producer = Producer(producer_config(settings))
    for value in records:
        producer.produce(CATALOG.topic(topic_id).name, value=value)
    assert producer.flush(30) == 0


def acks_for(settings, topic_id: str, ack_type, request_ids: list[str], timeout=60.0) -> dict[str, object]:
    reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic(topic_id).name)
    found: dict[str, object] = {}

    def have(messages) -> bool:
        found.clear()
        for m in messages:
            ack = msgspec.json.decode(m.value(), type=ack_type)
            if ack.request_id in request_ids:
                found.setdefault(ack.request_id, ack)
        return len(found) == len(request_ids)

    reader.read_until(have, timeout)
    reader.close()
    return found


def test_bank_consumer_applies_valid_and_rejects_what_it_cannot_trust(settings, icbc):
    valid = bank_request(icbc)
    bad_signature = bank_request(icbc)
    other_key = bank_request(bank_key(settings, PARTNERS, "CCB"))  # signed for another bank
    expired = bank_request(icbc, expires_in=timedelta(seconds=-1))
    misaddressed = bank_request(icbc, bank="CCB")
    records = [ENCODE(valid), tampered(bad_signature, account="acct_9999"), ENCODE(other_key), ENCODE(expired),
               ENCODE(misaddressed), b"{not json"]
    send(settings, bank_topic_id("ICBC"), records)
    ids = [r.request_id for r in (valid, bad_signature, other_key, expired, misaddressed)]
    acks = acks_for(settings, "bank_acks", BankAck, ids)
    assert [(acks[i].status, acks[i].reason) for i in ids] == [
        (AckStatus.applied, None),
        (AckStatus.rejected, RejectReason.bad_signature),
        (AckStatus.rejected, RejectReason.bad_signature),
        (AckStatus.rejected, RejectReason.expired),
        (AckStatus.rejected, RejectReason.wrong_partner),
    ]
    for ack in acks.values():  # the bank signs its answers with its own key
        assert verify(msgspec.to_builtins(ack), icbc) and ack.bank == "ICBC"


def test_bank_consumer_renews_and_releases_only_what_is_in_force(settings, icbc):
    apply = bank_request(icbc, account="acct_0042", ref="c" * 32)
    renew = bank_request(icbc, kind=RequestKind.renew, account="acct_0042", ref="c" * 32)
    release = bank_request(icbc, kind=RequestKind.release, account="acct_0042", ref="c" * 32)
    stray = bank_request(icbc, kind=RequestKind.release, account="acct_0043", ref="c" * 32)
    send(settings, bank_topic_id("ICBC"), [ENCODE(r) for r in (apply, renew, release, stray)])
    ids = [r.request_id for r in (apply, renew, release, stray)]
    acks = acks_for(settings, "bank_acks", BankAck, ids)
    assert [(acks[i].kind, acks[i].status) for i in ids] == [
        (RequestKind.apply, AckStatus.applied), (RequestKind.renew, AckStatus.renewed),
        (RequestKind.release, AckStatus.released), (RequestKind.release, AckStatus.rejected),
    ]
    assert acks[stray.request_id].reason is RejectReason.not_in_force


def test_a_redelivered_request_gets_the_same_answer():
    key, book, now = b"k" * 32, MeasureBook(), utcnow()
    apply = bank_request(key)
    release = bank_request(key, kind=RequestKind.release)
    answers = [judge_bank_request(ENCODE(r), "ICBC", key, book, now, "t:0:1").status for r in (apply, release, release)]
    assert answers == [AckStatus.applied, AckStatus.released, AckStatus.released]


def test_carrier_consumer_suspends_its_own_lines_only(settings, china_mobile):
    valid = carrier_request(china_mobile)
    bad = carrier_request(china_mobile)
    expired = carrier_request(china_mobile, expires_in=timedelta(seconds=-5))
    unicom = carrier_request(carrier_key(settings, PARTNERS, "china_unicom"), carrier="china_unicom")
    send(settings, "actions_line_suspension",
         [ENCODE(valid), tampered(bad, phone="+8613800000099"), ENCODE(expired), ENCODE(unicom)])
    ids = [valid.request_id, bad.request_id, expired.request_id]
    acks = acks_for(settings, "carrier_acks", CarrierAck, ids)
    assert [(acks[i].status, acks[i].reason) for i in ids] == [
        (AckStatus.applied, None), (AckStatus.rejected, RejectReason.bad_signature),
        (AckStatus.rejected, RejectReason.expired),
    ]
    assert all(verify(msgspec.to_builtins(a), china_mobile) for a in acks.values())
    with pytest.raises(AssertionError):  # China Mobile does not answer China Unicom's request
        acks_for(settings, "carrier_acks", CarrierAck, [unicom.request_id], timeout=3)
