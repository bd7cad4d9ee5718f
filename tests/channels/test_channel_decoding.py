"""Channel and partner decoders take any bytes: an action or a dead letter, a request or a rejected ack.

Pure and in process (hypothesis): no broker, no Valkey.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels.dead_letters import read_action
from channels.partners import MeasureBook, judge_bank_request, judge_carrier_request
from channels.worker import _coordinates
from decoding_strategies import payloads as arbitrary_payloads
from streams.contracts.actions import Channel
from streams.contracts.dissuasion import AckStatus, RejectReason
from streams.contracts.internal import DeadLetterReason

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = b"k" * 32
payloads = arbitrary_payloads("action_id")


@FAST
@given(payloads, st.sampled_from(list(Channel)))
@example(b'{"action_id": "\xc4\xe3"}', Channel.sms)
@example(b"\xff\xfe", Channel.sms)
@example(b"", Channel.sms)
def test_any_bytes_are_an_action_or_a_documented_rejection(value, channel):
    action, rejected = read_action(value, channel)
    assert (action is None) != (rejected is None)
    if rejected is not None:
        assert rejected.reason in set(DeadLetterReason) - {DeadLetterReason.internal_error}, rejected.detail


def test_gbk_in_an_action_is_not_utf8():
    _, rejected = read_action(b'{"action_id": "\xc4\xe3\xba\xc3"}', Channel.sms)
    assert rejected.reason is DeadLetterReason.not_utf8


@FAST
@given(payloads)
@example(b'{"request_id": "' + b"[" * 10 + b'"}')
@example(b"[" * 100_000 + b"]" * 100_000)
def test_partners_answer_any_bytes_with_a_rejected_ack(value):
    bank = judge_bank_request(value, "ICBC", KEY, MeasureBook(), NOW, "t:0:1")
    carrier = judge_carrier_request(value, "china_mobile", KEY, MeasureBook(), NOW, "t:0:1")
    for ack in (bank, carrier):
        assert ack.status is AckStatus.rejected
        assert ack.reason in (RejectReason.malformed, RejectReason.bad_signature)


def test_a_held_actions_source_is_read_back_into_coordinates():
    assert _coordinates("antifraud.actions.sms:3:17") == ("antifraud.actions.sms", 3, 17)
    assert _coordinates("no coordinates") == ("no coordinates", -1, -1)
