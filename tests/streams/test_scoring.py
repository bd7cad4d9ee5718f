"""Scoring: each signal of rules.yaml fires on its pattern and not on benign traffic."""

from hypothesis import given
from hypothesis import strategies as st

from signal_builders import call, report, sms, transfer
from streams.contracts.alerts import Tier
from streams.contracts.common import Typology
from streams.contracts.signals import CounterpartType, ReportKind
from streams.rules import load_rules
from streams.scoring import evaluate, fact_of, is_funds_warning

RULES = load_rules()


def run(*signals, elderly=False, student=False):
    facts = sorted((fact_of(s) for s in signals), key=lambda f: f.t)
    return evaluate(facts, max(f.t for f in facts), RULES, elderly, student)


def rules_fired(ev):
    return {f.rule for f in ev.fired}


def test_benign_calls_and_transfers_fire_nothing():
    ev = run(
        call(0, 120, counterpart="+8613900000005", ctype=CounterpartType.domestic_mobile),
        transfer(10, "350.00"),
        transfer(300, "1200.00"),
    )
    assert ev.fired == [] and ev.tier is None and ev.typology is Typology.unknown


def test_contact_with_listed_number_needs_an_answered_call_not_a_long_one():
    # A short answered call is the first contact (rules.yaml says why); a missed call or one
    # dropped as it was picked up (0 s) is no contact.
    missed = run(call(0, 0, listed=Typology.impersonate_police, answered=False))
    dropped = run(call(0, 0, listed=Typology.impersonate_police))
    assert "fraud_number_contact" not in rules_fired(missed) | rules_fired(dropped)
    for seconds in (1, 10, 45):
        short = run(call(0, seconds, listed=Typology.impersonate_police))
        assert "fraud_number_contact" in rules_fired(short), seconds
        assert short.tier is Tier.low and short.typology is Typology.impersonate_police


def test_long_suspect_call_and_many_numbers():
    ev = run(
        call(0, 900, counterpart="+639170000001", ctype=CounterpartType.international),
        call(60, 30, counterpart="+639170000002", ctype=CounterpartType.international),
        call(120, 30, counterpart="+8617000000003", ctype=CounterpartType.virtual_operator),
    )
    assert {"long_suspect_call", "many_suspect_numbers"} <= rules_fired(ev)


def test_contact_then_transfer_is_about_the_sequence():
    before = run(transfer(0, "5000.00"), call(30, 900, ctype=CounterpartType.voip_gateway))
    assert "contact_then_transfer" not in rules_fired(before)
    after = run(call(0, 900, ctype=CounterpartType.voip_gateway), transfer(30, "5000.00"))
    assert "contact_then_transfer" in rules_fired(after)
    too_late = run(call(0, 900, ctype=CounterpartType.voip_gateway), transfer(60 * 5, "5000.00"))
    assert "contact_then_transfer" not in rules_fired(too_late)


def test_rapid_transfers_and_new_payee_amount():
    ev = run(transfer(0, "8000.00", new_payee=True), transfer(5, "8000.00", new_payee=True), transfer(10, "9000.00", new_payee=True))
    assert {"rapid_transfers", "new_payee_amount"} <= rules_fired(ev)


def test_screen_sharing_during_banking_weighs_more():
    plain = run(report(0, ReportKind.screen_sharing))
    banking = run(report(0, ReportKind.screen_sharing, banking=True))
    assert banking.score > plain.score > 0


def test_vulnerability_raises_the_score_only_with_another_signal():
    assert run(transfer(0, "100.00"), elderly=True).score == 0
    young = run(report(0, ReportKind.fraud_app_installed))
    old = run(report(0, ReportKind.fraud_app_installed), elderly=True)
    assert old.score == young.score + RULES.signals.vulnerability.elderly_weight


def test_tiers_follow_the_cut_offs():
    low = run(report(0, ReportKind.fraud_app_installed))
    assert low.tier is Tier.low
    high = run(
        call(0, 1500, listed=Typology.impersonate_police, ctype=CounterpartType.voip_gateway),
        report(10, ReportKind.screen_sharing, banking=True),
        transfer(20, "49800.00", new_payee=True),
    )
    assert high.tier is Tier.high
    assert {f.rule for f in high.fired} >= {"fraud_number_contact", "screen_sharing", "contact_then_transfer"}


def test_evidence_names_the_events_that_prove_each_signal():
    contact = call(0, 900, listed=Typology.investment)
    link = sms(5, url_typology=Typology.investment)
    ev = run(contact, link)
    by_rule = {f.rule: f.event_ids for f in ev.fired}
    assert by_rule["fraud_number_contact"] == [contact.event_id]
    assert by_rule["phishing_link"] == [link.event_id]
    assert ev.typology is Typology.investment


def test_transfer_to_mule_account_is_a_funds_warning():
    assert is_funds_warning(fact_of(transfer(0, "20000.00", mule=Typology.romance)), RULES)
    assert not is_funds_warning(fact_of(transfer(0, "20000.00")), RULES)


# The pairing was written once as "every (contact, transfer) pair, the latest transfer's
# first": quadratic in a busy person's window (4.7 ms at 200 signals). It is linear now and
# must choose the same pair.
_KINDS = ("call", "sms", "transfer_out", "transfer_in", "report:screen_sharing", "report:suspicious_call")


@given(st.lists(st.tuples(st.integers(0, 7200), st.sampled_from(_KINDS), st.booleans(), st.booleans(),
                          st.sampled_from(["voip_gateway", "international", "domestic_mobile"])), max_size=40))
def test_contact_then_transfer_chooses_what_every_pair_would(rows):
    from streams.scoring import Fact, _contact_then_transfer, _is_suspect_contact

    facts = sorted((Fact(event_id=f"e{i}", t=float(t), kind=k, answered=a, listed_contact=listed, counterpart_type=c)
                    for i, (t, k, a, listed, c) in enumerate(rows)), key=lambda f: f.t)
    window = RULES.signals.contact_then_transfer.window_s
    kinds = {c.value for c in RULES.signals.long_suspect_call.counterpart_types}
    pairs = [(c, x) for x in facts if x.kind == "transfer_out" for c in facts
             if _is_suspect_contact(c, kinds) and 0 <= x.t - c.t <= window]
    expected = max(pairs, key=lambda pair: pair[1].t) if pairs else None
    assert _contact_then_transfer(facts, window, kinds) == expected
