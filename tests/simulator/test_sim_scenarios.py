import random
from datetime import timedelta
from urllib.parse import urlsplit

import msgspec
import pytest

from sim_helpers import NOW
from simulator import scenarios as sc
from simulator.malformed import MALFORMATIONS, break_message
from simulator.reference import FRAUD_TYPOLOGIES
from streams.catalog import get_catalog
from streams.contracts import AppReport, BankEvent, CaseReport, TelecomEvent, contract
from streams.contracts.reference import IntelKind
from streams.contracts.signals import BankKind, CounterpartType, Direction, ReportKind, TelecomKind

FOREIGN_OR_VOIP = (CounterpartType.international, CounterpartType.voip_gateway)


def build(typology, population, intel, n=40, seed=5):
    rng, ids = random.Random(seed), sc.EventIds("t")
    return [sc.FRAUD_BUILDERS[typology](population.random_person(rng), intel, NOW, rng, ids) for _ in range(n)]


def of(scenario, cls, **fields):
    return [o.value for o in scenario.offers
            if isinstance(o.value, cls) and all(getattr(o.value, k) == v for k, v in fields.items())]


def transfers_out(scenario):
    return of(scenario, BankEvent, kind=BankKind.transfer_out)


def listed_url(intel, url):
    return url in intel.values[IntelKind.phishing_url] or urlsplit(url).hostname in intel.values[IntelKind.phishing_domain]


def to_mule(intel, scenario):
    return [t for t in transfers_out(scenario) if intel.is_listed_account(t.counterparty_account)]


def decode(offer):
    return msgspec.json.decode(msgspec.json.encode(offer.value), type=contract(get_catalog().topic(offer.topic_id).contract))


@pytest.mark.parametrize("typology", FRAUD_TYPOLOGIES)
def test_every_message_validates_and_is_ordered(typology, population, intel):
    for scenario in build(typology, population, intel):
        assert scenario.typology is typology and scenario.name == typology.value
        person = population[int(scenario.person_id[1:])]
        times = [o.value.event_time for o in scenario.offers]
        assert times == sorted(times)
        for offer in scenario.offers:
            assert decode(offer) == offer.value
            value = offer.value
            if isinstance(value, TelecomEvent):
                assert offer.key == value.subscriber.encode() and value.subscriber == person.phone
            elif isinstance(value, BankEvent):
                assert offer.key == value.account.encode() and value.holder_phone == person.phone
                assert value.account in {a.token for a in person.accounts}
            elif isinstance(value, AppReport):
                assert value.reporter_phone == person.phone
            else:
                assert isinstance(value, CaseReport) and value.typology is typology
        assert scenario.expect_funds_warning == bool(to_mule(intel, scenario))


@pytest.mark.parametrize("typology", FRAUD_TYPOLOGIES)
def test_deterministic(typology, population, intel):
    assert build(typology, population, intel, n=5) == build(typology, population, intel, n=5)


def test_impersonate_police_shape(population, intel):
    for s in build(sc.Typology.impersonate_police, population, intel):
        call = of(s, TelecomEvent, kind=TelecomKind.call)[0]
        assert call.direction is Direction.incoming and call.answered and call.duration_s >= 600
        assert call.counterpart_type in FOREIGN_OR_VOIP and intel.is_listed_number(call.counterpart)
        assert of(s, AppReport, kind=ReportKind.screen_sharing, during_banking_session=True)
        mule_transfers = to_mule(intel, s)
        assert mule_transfers and s.expect_funds_warning
        assert all(t.payee_is_new and call.event_time < t.event_time for t in mule_transfers)


def test_investment_shape(population, intel):
    for s in build(sc.Typology.investment, population, intel):
        sms = of(s, TelecomEvent, kind=TelecomKind.sms)[0]
        assert intel.is_listed_number(sms.counterpart) and listed_url(intel, sms.sms_urls[0])
        apps = of(s, AppReport, kind=ReportKind.fraud_app_installed)
        assert apps and apps[0].apk_sha256 in intel.values[IntelKind.fraud_apk]
        outs = transfers_out(s)
        assert len(outs) >= 3 and all(t.payee_is_new for t in outs)
        assert len({t.counterparty_account for t in outs}) == len(outs)  # a new payee each time
    assert {s.expect_funds_warning for s in build(sc.Typology.investment, population, intel)} == {True, False}


def test_order_brushing_shape(population, intel):
    for s in build(sc.Typology.order_brushing, population, intel):
        sms = of(s, TelecomEvent, kind=TelecomKind.sms)[0]
        assert intel.is_listed_number(sms.counterpart) and listed_url(intel, sms.sms_urls[0])
        outs = transfers_out(s)
        assert all(t.amount <= 300 for t in outs[:-1]) and len(outs) >= 3
        assert outs[-1].amount >= 3000
        assert len(of(s, BankEvent, kind=BankKind.transfer_in)) == len(outs) - 1  # the rebates


def test_fake_loan_shape(population, intel):
    for s in build(sc.Typology.fake_loan, population, intel):
        call = of(s, TelecomEvent, kind=TelecomKind.call)[0]
        assert call.counterpart_type is CounterpartType.virtual_operator
        assert call.counterpart.startswith(("+86170", "+86171")) and intel.is_listed_number(call.counterpart)
        outs = transfers_out(s)
        assert 1 <= len(outs) <= 3 and all(500 <= t.amount <= 5000 and t.payee_is_new for t in outs)


def test_fake_customer_service_shape(population, intel):
    for s in build(sc.Typology.fake_customer_service, population, intel):
        call = of(s, TelecomEvent, kind=TelecomKind.call)[0]
        assert call.answered and call.duration_s >= 600 and intel.is_listed_number(call.counterpart)
        assert of(s, AppReport, kind=ReportKind.remote_control, during_banking_session=True)
        assert to_mule(intel, s) and s.expect_funds_warning


def test_romance_shape(population, intel):
    for s in build(sc.Typology.romance, population, intel):
        contacts = of(s, TelecomEvent)
        numbers = {c.counterpart for c in contacts}
        assert len(numbers) == 1 and intel.is_listed_number(numbers.pop())
        assert all(c.counterpart_type is CounterpartType.international for c in contacts)
        assert len(contacts) >= 4 and contacts[-1].event_time - contacts[0].event_time >= timedelta(days=1)
        assert len(to_mule(intel, s)) >= 2 and s.expect_funds_warning


def benign(population, n=600, seed=9):
    rng, ids, out = random.Random(seed), sc.EventIds("b"), []
    for _ in range(n):
        a, b = population.random_person(rng), population.random_person(rng)
        out += [sc.resident_call(a, b, NOW, rng, ids), sc.resident_sms(a, b, NOW, rng, ids),
                sc.delivery_sms(a, NOW, rng, ids), sc.salary(a, NOW, rng, ids),
                sc.known_payee_transfer(a, b, NOW, rng, ids)]
    return out


def test_benign_never_looks_like_fraud(population, intel):
    scenarios = benign(population)
    ids = [i for s in scenarios for i in s.event_ids]
    assert len(ids) == len(set(ids))
    for s in scenarios:
        assert s.typology is None and not s.expect_funds_warning
        for offer in s.offers:
            value = decode(offer)
            if isinstance(value, TelecomEvent):
                assert value.counterpart_type in (CounterpartType.domestic_mobile, CounterpartType.domestic_fixed)
                assert not intel.is_listed_number(value.counterpart) and not value.carrier_flagged
                assert not any(listed_url(intel, url) for url in value.sms_urls)
            else:
                assert isinstance(value, BankEvent) and not value.payee_is_new
                assert not intel.is_listed_account(value.counterparty_account)


@pytest.mark.parametrize("how", MALFORMATIONS)
def test_malformed_really_fails_validation(how, population):
    rng, ids = random.Random(1), sc.EventIds("m")
    person = population[0]
    templates = [sc.delivery_sms(person, NOW, rng, ids).offers[0], sc.salary(person, NOW, rng, ids).offers[0],
                 sc.app_report(ids, person, NOW, ReportKind.suspicious_sms, counterpart="+861069000000001")]
    for template in templates:
        decode(template)  # the template itself is valid
        for _ in range(5):
            payload = break_message(template, how, rng)
            with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
                msgspec.json.decode(payload, type=contract(get_catalog().topic(template.topic_id).contract))
