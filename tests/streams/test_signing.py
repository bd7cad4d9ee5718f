"""Signatures over canonical JSON: stable, tamper-evident, and keys that never default to a constant."""

import json
from datetime import UTC, datetime

import msgspec
import pytest

from streams.contracts.dissuasion import BankMeasure, BankReasonCode, BankRequest, RequestKind
from streams.signing import (
    KeyConfigError,
    alert_ref,
    canonical_json,
    derive_dev_key,
    dev_secret,
    load_key,
    sign,
    signed,
    verify,
)

KEY = b"k" * 32
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def request(**changes) -> BankRequest:
    fields = dict(request_id="br-1", bank="ICBC", account="acct_0001", measures=[BankMeasure.protective_stop_payment],
                  reason_code=BankReasonCode.transfer_during_alert, alert_ref="0" * 32, issued_at=AT,
                  expires_at=AT, kind=RequestKind.apply, signature="")
    return BankRequest(**{**fields, **changes})


def test_canonical_json_sorts_keys_drops_signature_and_keeps_unicode():
    a = canonical_json({"b": 1, "a": "保护性止付", "signature": "x"})
    b = canonical_json({"signature": "y", "a": "保护性止付", "b": 1})
    assert a == b == '{"a":"保护性止付","b":1}'.encode()


def test_floats_are_refused_they_have_no_canonical_form():
    with pytest.raises(TypeError, match="floats"):
        canonical_json({"amount": 1.5})
    assert not verify({"amount": 1.5, "signature": "0" * 64}, KEY)


def test_signed_message_verifies_as_received_json():
    message = json.loads(json.dumps(msgspec.to_builtins(signed(request(), KEY))))
    assert verify(message, KEY)


@pytest.mark.parametrize("field, value", [("account", "acct_0002"), ("kind", "release"), ("expires_at", "2099-01-01T00:00:00Z"),
                                          ("measures", ["stop_non_counter_business"])])
def test_any_changed_field_breaks_the_signature(field, value):
    message = msgspec.to_builtins(signed(request(), KEY))
    message[field] = value
    assert not verify(message, KEY)


def test_wrong_key_missing_or_malformed_signature_fail():
    message = msgspec.to_builtins(signed(request(), KEY))
    assert not verify(message, b"j" * 32)
    assert not verify({k: v for k, v in message.items() if k != "signature"}, KEY)
    assert not verify({**message, "signature": 42}, KEY)
    assert sign(message, KEY) == message["signature"]


def test_alert_ref_is_opaque_and_differs_per_partner():
    ref = alert_ref("AL-123", "bank:ICBC", KEY)
    assert len(ref) == 32 and "AL-123" not in ref
    assert ref == alert_ref("AL-123", "bank:ICBC", KEY)
    assert ref != alert_ref("AL-123", "bank:CCB", KEY)  # two banks cannot match their references


def test_dev_secret_is_random_per_run_dir_and_stable(tmp_path):
    first = dev_secret(tmp_path / "a")
    assert first == dev_secret(tmp_path / "a")
    assert first != dev_secret(tmp_path / "b")
    assert (tmp_path / "a" / "secrets" / "partner-dev-secret").stat().st_mode & 0o077 == 0
    assert derive_dev_key(first, "bank:ICBC") != derive_dev_key(first, "bank:CCB")


def test_keys_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "x" * 40)
    assert load_key("TEST_KEY", "bank:ICBC", dev=None) == b"x" * 40
    monkeypatch.setenv("TEST_KEY", "short")
    with pytest.raises(KeyConfigError, match="TEST_KEY is shorter"):
        load_key("TEST_KEY", "bank:ICBC", dev=lambda: b"dev")
    monkeypatch.delenv("TEST_KEY")
    with pytest.raises(KeyConfigError, match="TEST_KEY is not set"):
        load_key("TEST_KEY", "bank:ICBC", dev=None)
    assert load_key("TEST_KEY", "bank:ICBC", dev=lambda: b"dev") == b"dev"


def test_the_worked_example_in_the_docs_verifies():
    """Partners test their implementation against docs/dissuasion.md: it must stay right."""
    import re

    from streams.contracts.dissuasion import BankRequest as Request
    from streams.settings import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "dissuasion.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    canonical = re.search(r"Canonical text that is signed:\n\n```\n(.*?)\n```", text, re.S).group(1)
    key = b"documentation-example-key-not-for-use"
    assert verify(example, key)
    assert canonical_json(example).decode() == canonical
    msgspec.convert(example, Request)  # and it is a valid request


def test_processes_starting_together_share_one_dev_secret(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        secrets_read = set(pool.map(lambda _: dev_secret(tmp_path), range(32)))
    assert len(secrets_read) == 1 and len(secrets_read.pop()) == 64
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["partner-dev-secret"]
