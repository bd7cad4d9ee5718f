"""Ingest's decoding is total: any bytes become an accepted event or a dead letter with a documented reason.

Property-based (hypothesis), in process and pure: arbitrary bytes, arbitrary JSON, and
mutations of every valid example (other encodings, invalid UTF-8, huge numbers, NaN,
deep nesting, nulls, duplicated keys, wrong types). Nothing here needs a broker.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from decoding_strategies import FaustMessage
from streams.catalog import get_catalog
from streams.contracts import INPUT_CONTRACTS, DeadLetter, DeadLetterReason, Ingested
from streams.contracts.examples import EXAMPLES

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CATALOG = get_catalog()
INPUTS = {spec.id: spec for spec in CATALOG.of_kind("input")}
# Reasons any bytes may get; internal_error would mean a bug of ours met on the record.
DOCUMENTED = set(DeadLetterReason) - {DeadLetterReason.internal_error}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ingest = pytest.importorskip("agents.ingest")


def example_json(topic_id: str) -> dict:
    message = dict(EXAMPLES[INPUTS[topic_id].contract])
    message["event_time"] = NOW.isoformat()
    if "occurred_at" in message:
        message["occurred_at"] = NOW.isoformat()
    return message


def judge(topic_id: str, value: bytes | None):
    verdict = ingest.validate_message(INPUTS[topic_id].name, value, NOW)
    assert isinstance(verdict, (ingest.Accepted, ingest.Rejected))
    if isinstance(verdict, ingest.Rejected):
        assert verdict.reason in DOCUMENTED, verdict.detail
    else:
        # What is accepted leaves as a normalized record that the next stage decodes back the same.
        contract = INPUT_CONTRACTS[INPUTS[topic_id].contract]
        envelope = Ingested(event=verdict.event, ingested_at=NOW, source_topic="t", source_partition=0,
                            source_offset=0)
        again = msgspec.json.Decoder(Ingested[contract]).decode(msgspec.json.encode(envelope))
        assert again.event == verdict.event
    return verdict


topic_ids = st.sampled_from(sorted(INPUTS))
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
any_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


@FAST
@given(topic_ids, st.binary(max_size=3000))
@example("in_telecom", b"\xff\xfe\x00")
@example("in_bank", b'{"event_id":"\xc4\xe3\xba\xc3"}')  # GBK inside a JSON string
@example("in_case", b"")
def test_any_bytes(topic_id, value):
    judge(topic_id, value)


@FAST
@given(topic_ids, any_json)
def test_any_json(topic_id, document):
    judge(topic_id, json.dumps(document, allow_nan=True).encode())  # NaN and Infinity tokens too


FIELD_VALUES = any_json | st.sampled_from([
    None, "", 10 ** 400, -(10 ** 400), 1e308, "NaN", "Infinity", "1e999999", "-0", [], {}, "中文", "𠮷" * 100,
    "+86 106 9012 3456 7890 12", "95588", "\u0000", "2026-13-45T25:61:61+08:00",
])


@FAST
@given(topic_ids, st.data())
def test_a_valid_record_with_one_field_changed(topic_id, data):
    message = example_json(topic_id)
    field = data.draw(st.sampled_from(sorted(message) + ["unknown_field"]))
    action = data.draw(st.sampled_from(["replace", "delete"]))
    if action == "delete":
        message.pop(field, None)
    else:
        message[field] = data.draw(FIELD_VALUES)
    judge(topic_id, json.dumps(message, allow_nan=True, ensure_ascii=data.draw(st.booleans())).encode())


@FAST
@given(topic_ids, st.data())
def test_a_valid_record_in_another_encoding_or_with_bad_bytes(topic_id, data):
    raw = json.dumps(example_json(topic_id), ensure_ascii=False).encode("utf-8")
    mutation = data.draw(st.sampled_from(["gbk_string", "insert", "truncate", "utf16", "latin1_bytes"]))
    if mutation == "gbk_string":  # a string field's text in GBK, as Chinese carrier systems still send
        raw = raw.replace(b'"event_id": "', b'"event_id": "' + "诈骗".encode("gbk"), 1)
    elif mutation == "insert":
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    elif mutation == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif mutation == "utf16":
        raw = raw.decode().encode("utf-16")
    else:
        raw = raw.replace(b'"', b'"\xe9', 1)
    verdict = judge(topic_id, raw)
    if isinstance(verdict, ingest.Accepted):
        raw.decode("utf-8")  # nothing that is not UTF-8 gets through


@pytest.mark.parametrize("topic_id", sorted(INPUTS))
def test_gbk_text_is_dead_lettered_not_utf8(topic_id):
    # "你好" in GBK is not UTF-8. (Some GBK text happens to be valid UTF-8, "诈骗" for one: that
    # decodes, and then fails its field's rules or reads as other characters. Only a declared
    # encoding can tell.)
    gbk = "你好".encode("gbk")
    raw = json.dumps(example_json(topic_id)).encode().replace(b'"event_id": "', b'"event_id": "' + gbk, 1)
    verdict = judge(topic_id, raw)
    assert verdict.reason is DeadLetterReason.not_utf8


@pytest.mark.parametrize("document", [
    "[" * 100_000 + "]" * 100_000,                        # deep nesting (over max_event_bytes too)
    '{"a":' * 5_000 + "1" + "}" * 5_000,                  # deep objects under the size limit
    "[" * 20_000 + "]" * 20_000,                          # deep arrays under the size limit
    '{"event_id": "a", "event_id": "b"}',                 # duplicated keys
    "null", "NaN", "1e999999999", "-" + "9" * 5000, '"\\ud800"',
])
@pytest.mark.parametrize("topic_id", sorted(INPUTS))
def test_pathological_json(topic_id, document):
    judge(topic_id, document.encode())


def test_duplicated_keys_the_last_wins_as_in_every_json_reader(monkeypatch):
    # Not a reason to refuse: RFC 8259 leaves it open, and Python's and msgspec's readers agree.
    message = example_json("in_telecom")
    raw = json.dumps(message)[:-1] + ', "duration_s": 7}'
    verdict = judge("in_telecom", raw.encode())
    assert verdict.event.duration_s == 7


def test_a_10_mb_value_is_oversized_and_kept_cut():
    value = b'{"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    verdict = judge("in_bank", value)
    assert verdict.reason is DeadLetterReason.oversized
    letter = ingest.dead_letter(FaustMessage("antifraud.in.bank", value, key=b"\xff\xfe"), verdict, NOW)
    assert letter.original_truncated and letter.original_size == len(value)


def test_a_declared_gb18030_feed_is_transcoded(monkeypatch):
    topic = INPUTS["in_intel"].name
    monkeypatch.setitem(ingest.ENCODINGS, topic, "gb18030")
    message = dict(example_json("in_intel"), kind="phishing_url", value="https://example.test/退款/领取")
    verdict = ingest.validate_message(topic, json.dumps(message, ensure_ascii=False).encode("gb18030"), NOW)
    assert isinstance(verdict, ingest.Accepted)
    assert verdict.event.value == "https://example.test/退款/领取"
    broken = ingest.validate_message(topic, b'{"event_id": "\x81\x20"}', NOW)
    assert broken.reason is DeadLetterReason.not_utf8 and "gb18030" in broken.detail


def test_the_catalog_accepts_an_encoding_and_defaults_to_utf8():
    assert {spec.encoding for spec in INPUTS.values()} <= {"utf-8", "gb18030"}
    assert type(INPUTS["in_telecom"]).model_fields["encoding"].default == "utf-8"


def test_an_unexpected_failure_is_the_records_internal_error(monkeypatch):
    topic = INPUTS["in_telecom"].name

    class Broken:
        def decode(self, value):
            raise ZeroDivisionError("boom on +8613800138000")

    monkeypatch.setitem(ingest.DECODERS, topic, Broken())
    verdict = ingest.validate_message(topic, b"{}", NOW)
    assert verdict.reason is DeadLetterReason.internal_error
    assert "ingest" in verdict.detail and "ZeroDivisionError" in verdict.detail
    assert "13800138000" not in verdict.detail


# ------------------------------------------------------------------------ keys and dead letters
@FAST
@given(st.binary(max_size=300) | st.none(), st.binary(max_size=300) | st.none())
@example(b"\xff\xfe\xc4\xe3", b'{"x": 1}')
def test_any_key_and_value_make_a_dead_letter(key, value):
    rejected = ingest.Rejected(DeadLetterReason.not_utf8, "message is not UTF-8")
    letter = ingest.dead_letter(FaustMessage(INPUTS["in_telecom"].name, value, key), rejected, NOW)
    again = msgspec.json.decode(msgspec.json.encode(letter), type=DeadLetter)
    assert base64.b64decode(again.original_b64) == (value or b"")
    assert (base64.b64decode(again.key_b64) if again.key_b64 else None) == (key or None)


def test_partition_keys_come_from_the_event_never_the_record_key():
    verdict = judge("in_telecom", json.dumps(example_json("in_telecom")).encode())
    assert ingest.partition_key(verdict.event) == EXAMPLES["TelecomEvent"]["subscriber"].encode()


def test_nan_never_becomes_a_number():
    message = dict(example_json("in_intel"), confidence=math.nan)
    verdict = judge("in_intel", json.dumps(message, allow_nan=True).encode())
    assert isinstance(verdict, ingest.Rejected)
