"""Normalization of phone numbers and URLs: real service numbers are accepted, URL paths keep their case."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts import TelecomEvent
from streams.contracts.common import normalize_phone
from streams.contracts.examples import EXAMPLES
from streams.contracts.reference import IntelKind, normalize_intel_value, normalize_url
from streams.reference import url_probes

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).isoformat()


@pytest.mark.parametrize("raw, e164", [
    ("10086", "+8610086"),                          # China Mobile's service line
    ("12345", "+8612345"),                          # the citizens' hotline
    ("96110", "+8696110"),                          # the anti-fraud hotline
    ("110", "+86110"),
    ("95588", "+8695588"),                          # a bank's service number
    ("400-123-4567", "+864001234567"),
    ("800 123 4567", "+868001234567"),
    ("1069 0123 4567 8901", "+861069012345678901"),  # a 106 SMS sender, longer than E.164 allows
    ("10690123456789012", "+8610690123456789012"),
    ("+86 106 9012 3456 7890 12", "+8610690123456789012"),
    ("0086 95588", "+8695588"),
    ("138 0013 8000", "+8613800138000"),            # subscriber numbers are as before
    ("+1 202 555 0123", "+12025550123"),
])
def test_service_numbers_and_short_codes_are_valid_counterparts(raw, e164):
    assert normalize_phone(raw, "counterpart") == e164
    assert normalize_phone(e164, "counterpart") == e164  # the next stage decodes it again


def test_a_106_sms_is_accepted_by_the_contract():
    message = dict(EXAMPLES["TelecomEvent"], event_time=NOW, kind="sms", duration_s=0, answered=False,
                   counterpart="106901234567890", counterpart_type="unknown")
    event = msgspec.json.decode(json.dumps(message).encode(), type=TelecomEvent)
    assert event.counterpart == "+86106901234567890"


@pytest.mark.parametrize("raw", ["12", "+86 12", "abc10086", "10086 ext. 1", "99999999999999999"])
def test_what_is_still_not_a_number(raw):
    with pytest.raises(ValueError) as info:
        normalize_phone(raw, "counterpart")
    assert raw not in str(info.value) or len(raw) < 4


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-() .", min_size=3, max_size=32) | st.text(min_size=3, max_size=32))
def test_normalization_is_idempotent_or_refuses(raw):
    try:
        once = normalize_phone(raw, "x")
    except ValueError:
        return
    assert once.startswith("+") and once[1:].isdigit()
    assert normalize_phone(once, "x") == once


@pytest.mark.parametrize("raw, kept", [
    ("https://t.cn/AbC123", "https://t.cn/AbC123"),
    ("HTTPS://T.CN/AbC123?Code=XyZ#Top", "https://t.cn/AbC123?Code=XyZ#Top"),
    ("T.CN/AbC123", "t.cn/AbC123"),                  # bare host/path, as SMS carry them
    ("http://User@Pay.Example:8080/Login", "http://User@pay.example:8080/Login"),
    ("//Pay.Example/Path", "//pay.example/Path"),
])
def test_url_paths_keep_their_case(raw, kept):
    assert normalize_url(raw) == kept
    assert normalize_intel_value(IntelKind.phishing_url, raw) == kept


def test_two_short_links_differing_in_case_stay_two():
    a = normalize_intel_value(IntelKind.phishing_url, "https://t.cn/AbC")
    b = normalize_intel_value(IntelKind.phishing_url, "https://t.cn/abc")
    assert a != b


def test_a_listed_url_and_an_sms_url_meet_whatever_the_case_of_the_host():
    listed = normalize_intel_value(IntelKind.phishing_url, "https://T.cn/AbC")
    [exact, _domains] = url_probes("sms_url", "HTTPS://t.CN/AbC")
    assert exact.keys[0].endswith(listed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_url_normalization_is_total_and_idempotent(raw):
    once = normalize_url(raw)
    assert normalize_url(once) == once
    assert once.lower() == raw.lower() or raw.startswith("//") or "://" in raw or once.lower() == raw.lower()
