"""Late intelligence and the reference barrier's pure parts: fast, in-process."""

from __future__ import annotations

from streams.alerting import PersonState, dump, hold_hit, load, take_held_hits
from streams.contracts.alerts import IntelHit
from streams.contracts.common import Typology
from streams.contracts.reference import IntelKind
from streams.reference import (
    LookupRequest,
    ReferenceCache,
    account_probes,
    contact_key,
    contacts_of,
    decode_invalidation,
    intel_key,
    number_probes,
    parse_contacts,
)
from streams.rules import get_rules
from streams.scoring import Fact, apply_hit, is_funds_warning

RULES = get_rules()
MULE = IntelHit(kind=IntelKind.mule_account, matched_on="counterparty_account", typology=Typology.investment,
                confidence=0.9, source="bank_report")


def test_a_late_mule_hit_makes_the_transfer_a_funds_warning_once():
    fact = Fact(event_id="tx-1", t=1000.0, kind="transfer_out", amount=4980.0)
    assert not is_funds_warning(fact, RULES)
    assert apply_hit(fact, MULE) and is_funds_warning(fact, RULES) and fact.votes == {"investment": 0.9}
    assert not apply_hit(fact, MULE)  # delivered twice, or already carried: nothing changes


def test_a_late_fraud_number_marks_the_contact_listed():
    fact = Fact(event_id="c-1", t=1000.0, kind="call", answered=True)
    hit = IntelHit(kind=IntelKind.fraud_number, matched_on="counterpart", typology=Typology.impersonate_police,
                   confidence=0.8, source="mps_list")
    assert apply_hit(fact, hit) and fact.listed_contact and not fact.mule


def test_a_recheck_that_overtakes_its_signal_is_held_and_taken_once():
    state = PersonState(watermark=5000.0)
    hold_hit(state, "tx-9", 4990.0, MULE, RULES)
    hold_hit(state, "tx-9", 4990.0, MULE, RULES)  # redelivered: kept once
    state = load(dump(state))  # survives the table's changelog
    assert take_held_hits(state, "tx-9") == [MULE] and take_held_hits(state, "tx-9") == []


def test_contacts_are_indexed_for_exact_lists_only():
    request = LookupRequest(probes=tuple(account_probes("counterparty_account", "acct_m1")
                                         + number_probes("counterpart", "+8617000001234")))
    contacts = contacts_of(request, "P1", "ev-1", 1_000)
    keys = [c.entry_key for c in contacts]
    assert keys == [intel_key(IntelKind.mule_account, "acct_m1"), intel_key(IntelKind.fraud_number, "+8617000001234")]
    assert contact_key(keys[0]) == "ref:contact:mule_account:acct_m1"
    raw = {c.field.encode(): str(c.event_time_ms).encode() for c in contacts[:1]}
    assert parse_contacts(keys[0], raw) == contacts[:1]


def test_invalidations_old_and_new_shape_and_what_the_cache_covers():
    assert decode_invalidation(b'["ref:intel:mule_account:a"]') == (["ref:intel:mule_account:a"], {})
    keys, applied = decode_invalidation(b'{"keys": ["k"], "applied": {"antifraud.norm.intel:2": 41}}')
    cache = ReferenceCache(10, 60)
    assert not cache.covers({"antifraud.norm.intel:2": 41})
    cache.saw(applied)
    cache.saw({"antifraud.norm.intel:2": 7})  # never backwards
    assert cache.covers({"antifraud.norm.intel:2": 41}) and not cache.covers({"antifraud.norm.intel:2": 42})
