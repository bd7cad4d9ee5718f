"""Late intelligence and the reference barrier's pure parts: fast, in-process."""

from __future__ import annotations

from streams.alerting import PersonState, dump, hold_hit, load, reinstate, take_held_hits
from streams.contracts.alerts import IntelHit
from streams.contracts.common import Typology
from streams.contracts.reference import IntelKind
from streams.reference import (
    Contact,
    LookupRequest,
    ReferenceBarrier,
    ReferenceCache,
    account_probes,
    contact_key,
    contacts_of,
    decode_invalidation,
    intel_key,
    number_probes,
    parse_contacts,
    reach_back_contacts,
)
from streams.rules import get_rules
from streams.scoring import Fact, apply_hit, evidence_of, fact_of_evidence, is_funds_warning

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
    old_index = {c.field.encode(): str(c.event_time_ms).encode() for c in contacts[:1]}  # before issue 21
    assert parse_contacts(keys[0], old_index) == contacts[:1]


def test_a_contact_keeps_what_correlation_needs_and_no_number_or_account():
    fact = Fact(event_id="c-7", t=1_000.5, kind="call", answered=True, duration_s=900, counterpart_type="international",
                counterpart_ref="a1b2c3", votes={"investment": 0.4}, listed_contact=True)
    request = LookupRequest(probes=tuple(number_probes("counterpart", "+8617000001234")))
    [contact] = contacts_of(request, "P1", "c-7", 1_000_500, lambda: evidence_of(fact))
    assert b"+86" not in contact.value and b"1234" not in contact.value
    [back] = parse_contacts(contact.entry_key, {contact.field: contact.value})
    assert back == contact
    rebuilt = fact_of_evidence("c-7", 1_000.5, back.evidence)
    # The intel it carried then is not kept: the reach-back adds the entry listed since.
    assert (rebuilt.kind, rebuilt.answered, rebuilt.duration_s, rebuilt.counterpart_type, rebuilt.counterpart_ref) == (
        "call", True, 900, "international", "a1b2c3")
    assert not rebuilt.listed_contact and rebuilt.votes == {}


H = 3_600_000  # an hour in ms


def contact_at(t_ms: int) -> Contact:
    return Contact("ref:intel:fraud_number:+8617000001234", f"P{t_ms}", f"ev-{t_ms}", t_ms, "counterpart")


def times(contacts: list[Contact]) -> list[int]:
    return [c.event_time_ms for c in contacts]


def test_a_fresh_listing_reaches_back_over_the_window_and_no_further():
    listed, now = 100 * H, 100 * H + 2_000
    contacts = [contact_at(listed - 80 * H), contact_at(listed - 72 * H), contact_at(listed - 1 * H),
                contact_at(listed - 30_000), contact_at(listed + 1_000)]
    at_once, paced = reach_back_contacts(contacts, listed, now, RULES.reach_back.window_s,
                                         RULES.reach_back.fresh_listing_s)
    assert times(paced) == [listed - 72 * H, listed - 1 * H]  # the reach-back proper, behind the live path
    assert times(at_once) == [listed - 30_000, listed + 1_000]  # crossed the entry on the way: repaired at once


def test_an_old_listing_loaded_now_reaches_back_only_to_the_last_hour():
    """A cold start replaying a list is history, not news: only signals judged while it was loading."""
    now = 100 * H
    listed = now - 30 * 24 * H
    contacts = [contact_at(now - 2 * H), contact_at(now - 10 * 60_000), contact_at(now - 5_000)]
    at_once, paced = reach_back_contacts(contacts, listed, now, RULES.reach_back.window_s,
                                         RULES.reach_back.fresh_listing_s)
    assert times(paced) == [now - 10 * 60_000] and times(at_once) == [now - 5_000]


def test_a_reinstated_signal_is_placed_by_its_time_not_late_and_survives_the_cap():
    state = PersonState(watermark=10_000.0, facts=[Fact(event_id=f"e{i}", t=5_000.0 + i, kind="sms")
                                                   for i in range(RULES.max_history)])
    old = Fact(event_id="old", t=1_000.0, kind="call", answered=True, duration_s=900)
    reinstate(state, old, RULES)
    assert len(state.facts) == RULES.max_history and state.facts[0] is old
    assert state.watermark == 10_000.0 and state.late_events == 0 and not old.late


def test_invalidations_old_and_new_shape_and_what_the_cache_covers():
    assert decode_invalidation(b'["ref:intel:mule_account:a"]') == (["ref:intel:mule_account:a"], {})
    keys, applied = decode_invalidation(b'{"keys": ["k"], "applied": {"antifraud.norm.intel:2": 41}}')
    cache = ReferenceCache(10, 60)
    assert not cache.covers({"antifraud.norm.intel:2": 41})
    cache.saw(applied)
    cache.saw({"antifraud.norm.intel:2": 7})  # never backwards
    assert cache.covers({"antifraud.norm.intel:2": 41}) and not cache.covers({"antifraud.norm.intel:2": 42})


def test_the_barrier_does_not_wait_for_a_partition_far_behind():
    """A bulk list of 100,000 entries is a minute of the loader's work: waiting 5 s per batch for it
    would only delay every live signal. Near partitions are still waited for."""
    barrier = ReferenceBarrier(None, "unused:9092", {"antifraud.norm.intel": 2}, timeout_s=5.0, max_backlog=2000)
    behind = {"antifraud.norm.intel:0": 100_500, "antifraud.norm.intel:1": 900}
    assert barrier._skip_far_behind(behind, {"antifraud.norm.intel:0": 500, "antifraud.norm.intel:1": 10})
    assert barrier.given_up == {"antifraud.norm.intel:0": 100_500}


def test_a_barrier_whose_broker_does_not_answer_judges_without_it_instead_of_stopping_enrich():
    """Across a broker restart the end offsets waited out aiokafka's 40 s and raised: enrich crashed and
    took its worker down for a 3 s outage. A port nothing listens on is a broker that does not answer."""
    import asyncio

    from prometheus_client import REGISTRY

    from streams.embedded import free_port

    def unanswered() -> float:
        return REGISTRY.get_sample_value("antifraud_reference_barrier_unanswered_total") or 0

    before = unanswered()
    barrier = ReferenceBarrier(None, f"127.0.0.1:{free_port()}", {"antifraud.norm.intel": 2}, timeout_s=1.0)

    async def twice() -> list[bool]:
        try:
            return [await barrier.wait(), await barrier.wait()]  # the second with a fresh client
        finally:
            await barrier.close()

    assert asyncio.run(twice()) == [False, False], "the cache may not answer for what was not waited for"
    assert unanswered() == before + 2
    assert barrier._consumer is None
