"""Validation and normalization of the input contracts, one rule at a time.

Each case starts from the documented example and changes one field, so a failure points
at that rule and the examples stay proven valid.
"""

from decimal import Decimal

import msgspec
import pytest

from streams.contracts import INPUT_CONTRACTS
from streams.contracts.examples import EXAMPLES

DROP = object()  # as an override: leave the field out of the message
APK = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"


def decode(name: str, **changes):
    message = {**EXAMPLES[name], **changes}
    message = {k: v for k, v in message.items() if v is not DROP}
    return msgspec.json.decode(msgspec.json.encode(message), type=INPUT_CONTRACTS[name])


def rejects(name: str, **changes) -> str:
    with pytest.raises(msgspec.ValidationError) as err:
        decode(name, **changes)
    return str(err.value)


def test_every_input_contract_has_an_example():
    assert EXAMPLES.keys() == INPUT_CONTRACTS.keys()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_decodes(name):
    assert isinstance(decode(name), INPUT_CONTRACTS[name])


# Every phone field of every contract, with what the rest of the message needs for it to apply.
PHONE_FIELDS = [
    ("TelecomEvent", "subscriber", {}),
    ("TelecomEvent", "counterpart", {}),
    ("BankEvent", "holder_phone", {}),
    ("AppReport", "reporter_phone", {}),
    ("AppReport", "counterpart", {}),
    ("CaseReport", "victim_phone", {}),
    ("RegistryUpdate", "identifier", {"identifier_kind": "phone"}),
    ("IntelUpdate", "value", {"kind": "fraud_number"}),
]
PHONE_FORMS = [
    "138 0013 8000",
    "008613800138000",
    "+86 138-0013-8000",
    "+8613800138000",
    "13800138000",
    "138\u30000013\u30008000",  # the CJK full-width space a Chinese keyboard types
    "(+86) 138.0013.8000",
]


@pytest.mark.parametrize("form", PHONE_FORMS)
@pytest.mark.parametrize(("name", "field", "context"), PHONE_FIELDS)
def test_phone_forms_normalize_to_e164(name, field, context, form):
    assert getattr(decode(name, **context, **{field: form}), field) == "+8613800138000"


@pytest.mark.parametrize("bad", ["12", "abc", "+86 1", "1380013800O", "138 0013 8000 ext. 12"])
@pytest.mark.parametrize(("name", "field", "context"), PHONE_FIELDS)
def test_invalid_phone_names_the_field_not_the_number(name, field, context, bad):
    message = rejects(name, **context, **{field: bad})
    assert field in message
    assert bad not in message  # a phone number is personal data: never echoed into logs


@pytest.mark.parametrize(("name", "field"), [("BankEvent", "amount"), ("CaseReport", "loss_amount")])
@pytest.mark.parametrize("amount", ["12.345", "-1.00", "0", "0.00", "100000000.01", "NaN", "Infinity"])
def test_bad_money_is_rejected(name, field, amount):
    assert field in rejects(name, **{field: amount})


@pytest.mark.parametrize(("sent", "kept"), [("12", "12.00"), ("0.5", "0.50"), ("49800.00", "49800.00")])
def test_money_is_kept_with_two_decimals(sent, kept):
    event = decode("BankEvent", amount=sent)
    assert event.amount == Decimal(kept)
    assert msgspec.json.encode(event.amount) == f'"{kept}"'.encode()


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("when", ["2025-03-14T09:21:07", "2025-03-14 09:21", "yesterday"])
def test_event_time_needs_an_offset(name, when):
    assert "$.event_time" in rejects(name, event_time=when)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("TelecomEvent", "carrier", "china_tietong"),
        ("TelecomEvent", "counterpart_type", "VOIP"),
        ("BankEvent", "channel", "wechat"),
        ("AppReport", "kind", "scam"),
        ("CaseReport", "typology", "lottery"),
        ("IntelUpdate", "kind", "fraud_email"),
        ("RegistryUpdate", "age_band", "60+"),
    ],
)
def test_unknown_enum_value_is_rejected(name, field, value):
    message = rejects(name, **{field: value})
    assert "Invalid enum value" in message and f"$.{field}" in message


@pytest.mark.parametrize("name", EXAMPLES)
def test_unknown_field_is_rejected(name):
    assert "unknown field `subscribr`" in rejects(name, subscribr="+8613800138000")


@pytest.mark.parametrize("name", EXAMPLES)
def test_missing_event_id_is_rejected(name):
    assert "event_id" in rejects(name, event_id=DROP)


@pytest.mark.parametrize("event_id", ["", "-starts-with-dash", "has space", "x" * 65])
def test_bad_event_id_is_rejected(event_id):
    assert "$.event_id" in rejects("TelecomEvent", event_id=event_id)


def test_sms_has_no_duration():
    assert "SMS" in rejects("TelecomEvent", kind="sms", answered=False, duration_s=30)
    assert decode("TelecomEvent", kind="sms", answered=False, duration_s=0).duration_s == 0


@pytest.mark.parametrize("kind", ["transfer_out", "transfer_in"])
def test_transfer_needs_amount_and_counterparty(kind):
    assert "amount" in rejects("BankEvent", kind=kind, amount=DROP)
    assert "counterparty_account" in rejects("BankEvent", kind=kind, counterparty_account=DROP)


def test_payee_added_needs_no_amount():
    assert decode("BankEvent", kind="payee_added", amount=DROP).amount is None


def test_fraud_app_installed_needs_apk_hash():
    assert "apk_sha256" in rejects("AppReport", kind="fraud_app_installed")
    report = decode("AppReport", kind="fraud_app_installed", apk_sha256=APK)
    assert report.apk_sha256 == APK.lower()


def test_bad_apk_hash_is_rejected():
    assert "$.apk_sha256" in rejects("AppReport", kind="fraud_app_installed", apk_sha256="not-a-hash")


def test_case_needs_a_victim_phone_or_account():
    assert "victim" in rejects("CaseReport", victim_phone=DROP, victim_account=DROP)
    assert decode("CaseReport", victim_phone=DROP).victim_account == "tok_4f2a9c1e7b"


@pytest.mark.parametrize(
    ("kind", "sent", "kept"),
    [
        ("fraud_number", "0086 170 0000 0002", "+8617000000002"),
        ("number_range", "+86 170 0000", "+861700000"),
        ("mule_account", " tok_Mule_8d31 ", "tok_Mule_8d31"),  # tokens are case-sensitive
        ("phishing_url", "HTTPS://Pay-Verify.example/", "https://pay-verify.example/"),
        ("phishing_domain", "Pay-Verify.Example", "pay-verify.example"),
        ("fraud_apk", APK, APK.lower()),
    ],
)
def test_intel_value_is_normalized_per_kind(kind, sent, kept):
    assert decode("IntelUpdate", kind=kind, value=sent).value == kept


@pytest.mark.parametrize(
    ("kind", "bad"),
    [("fraud_number", "not a number"), ("number_range", "1700000"), ("number_range", "+"), ("fraud_apk", "abc123")],
)
def test_bad_intel_value_is_rejected(kind, bad):
    assert rejects("IntelUpdate", kind=kind, value=bad)


@pytest.mark.parametrize("confidence", [-0.1, 1.01])
def test_confidence_is_between_0_and_1(confidence):
    assert "$.confidence" in rejects("IntelUpdate", confidence=confidence)


@pytest.mark.parametrize("missing", ["person_id", "county", "station"])
def test_registry_upsert_needs_person_and_jurisdiction(missing):
    assert missing in rejects("RegistryUpdate", op="upsert", **{missing: DROP})


def test_registry_tombstone_needs_only_the_identifier():
    tombstone = decode("RegistryUpdate", op="delete", person_id=DROP, county=DROP, station=DROP, grid=DROP)
    assert tombstone.person_id is None and tombstone.identifier == "+8613800000001"


def test_registry_account_identifier_is_kept_as_is():
    assert decode("RegistryUpdate", identifier_kind="account", identifier="tok_4f2a9c1e7b").identifier == (
        "tok_4f2a9c1e7b"
    )
