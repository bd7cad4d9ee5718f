"""Scenario builders: the messages one fraud (or one piece of ordinary life) produces.

A builder returns a Scenario: the ordered offers (topic id, key, contract value) and the
ground truth the pipeline should reach (typology, victim, funds warning expected). Event
times follow the real story (a 25-minute call, a transfer 13 minutes in, contacts over
days); the traffic simulator replays them compressed. Fraud builders take their
counterparts from the live intelligence lists; benign builders only use residents,
employers and delivery service numbers, which no list contains.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from msgspec import Struct

from simulator.population import RESIDENT_BANKS, Account, Person
from simulator.reference import FRAUD_TYPOLOGIES, Intel, IntelEntry
from streams.contracts.cases import CaseReport
from streams.contracts.common import Typology
from streams.contracts.reference import IntelKind
from streams.contracts.signals import (
    AppReport,
    BankChannel,
    BankEvent,
    BankKind,
    CounterpartType,
    Direction,
    ReportKind,
    ReportSource,
    TelecomEvent,
    TelecomKind,
)

T = Typology
CASE_SHARE = 0.2  # share of frauds that still end as a filed case (预警成案)


@dataclass(frozen=True, slots=True)
class Offer:
    topic_id: str
    key: bytes | None
    value: Struct


@dataclass(frozen=True, slots=True)
class LateListing:
    """An intel entry published after the contact it should have caught (simulator.late_intel)."""

    offer: Offer  # the IntelUpdate, on in_intel
    after: str  # event id of that contact
    delay_s: float  # wall-clock seconds after the contact is sent (not compressed like the story's gaps)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    typology: Typology | None  # None: benign
    person_id: str
    offers: list[Offer]
    expect_funds_warning: bool = False
    listings: tuple[LateListing, ...] = ()  # entries listed only after the contacts (回溯预警)

    @property
    def event_ids(self) -> list[str]:
        return [o.value.event_id for o in self.offers]


class EventIds:
    """Unique, deterministic event ids: '<namespace>-<kind>-<n>'."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.count = 0

    def __call__(self, kind: str) -> str:
        self.count += 1
        return f"{self.namespace}-{kind}-{self.count}"


# ------------------------------------------------------------------ message helpers
def _call(ids, p: Person, at, counterpart: str, ctype, *, direction=Direction.incoming, answered=True,
          duration_s=0, flagged=False) -> Offer:
    return _tel(ids, p, at, counterpart, ctype, TelecomKind.call, direction, answered, duration_s if answered else 0,
                flagged, [])


def _sms(ids, p: Person, at, counterpart: str, ctype, *, urls=(), direction=Direction.incoming, flagged=False) -> Offer:
    return _tel(ids, p, at, counterpart, ctype, TelecomKind.sms, direction, False, 0, flagged, list(urls))


def _tel(ids, p, at, counterpart, ctype, kind, direction, answered, duration_s, flagged, urls) -> Offer:
    # The resident's own carrier reports the record.
    event = TelecomEvent(
        event_id=ids("tel"), event_time=at, carrier=p.carrier, kind=kind, direction=direction,
        subscriber=p.phone, counterpart=counterpart, counterpart_type=ctype, cell_id=p.home_cell,
        answered=answered, duration_s=duration_s, carrier_flagged=flagged, sms_urls=urls,
    )
    return Offer("in_telecom", p.phone.encode(), event)


def _bank(ids, p: Person, account: Account, at, kind: BankKind, *, counterparty: str | None = None,
          counterparty_bank: str | None = None, amount: Decimal | None = None, new_payee=False,
          channel=BankChannel.mobile_banking) -> Offer:
    event = BankEvent(
        event_id=ids("bank"), event_time=at, bank=account.bank, kind=kind, account=account.token,
        branch_code=account.branch_code, channel=channel, holder_phone=p.phone, counterparty_account=counterparty,
        counterparty_bank=counterparty_bank, amount=amount, payee_is_new=new_payee,
    )
    return Offer("in_bank", account.token.encode(), event)


def app_report(ids: EventIds, p: Person, at: datetime, kind: ReportKind, *, counterpart=None, url=None, apk=None,
               banking=False, source=ReportSource.antifraud_app) -> Offer:
    event = AppReport(event_id=ids("app"), event_time=at, source=source, kind=kind, reporter_phone=p.phone,
                      counterpart=counterpart, url=url, apk_sha256=apk, during_banking_session=banking)
    return Offer("in_app_report", p.phone.encode(), event)


def _pay(ids, p: Person, at, payee: str, payee_bank: str, amount: Decimal, rng, out: list[Offer]) -> None:
    """A new payee, then the transfer to it: what a victim's banking app does."""
    account = p.accounts[rng.randrange(len(p.accounts))]
    out.append(_bank(ids, p, account, at, BankKind.payee_added, counterparty=payee, counterparty_bank=payee_bank))
    out.append(_bank(ids, p, account, at + timedelta(seconds=rng.randint(40, 180)), BankKind.transfer_out,
                     counterparty=payee, counterparty_bank=payee_bank, amount=amount, new_payee=True))


def _maybe_case(ids, p: Person, typology: Typology, occurred: datetime, loss: Decimal, rng, out: list[Offer]) -> None:
    if rng.random() >= CASE_SHARE:
        return
    case_id = f"AJ{rng.getrandbits(48):012X}"
    event = CaseReport(event_id=ids("case"), event_time=occurred + timedelta(hours=rng.randint(2, 30)),
                       case_id=case_id, occurred_at=occurred, typology=typology, county=p.county, station=p.station,
                       victim_phone=p.phone, victim_account=p.accounts[0].token, loss_amount=loss)
    out.append(Offer("in_case", case_id.encode(), event))


def money(rng: random.Random, low: int, high: int, step: int = 1) -> Decimal:
    """CNY between low and high; fraud amounts are round (step), daily life has cents."""
    if step > 1:
        return Decimal(rng.randrange(low // step, high // step + 1) * step)
    return Decimal(rng.randrange(low * 100, high * 100 + 1)) / 100


def fresh_account(rng: random.Random) -> tuple[str, str]:
    """A new, unlisted payee (a second-tier mule nobody has reported yet)."""
    return "acct_" + hashlib.blake2b(rng.randbytes(16), digest_size=10).hexdigest(), rng.choice(RESIDENT_BANKS)


def _fraud_number(intel: Intel, typology: Typology, rng, types=None) -> tuple[str, CounterpartType]:
    entry = intel.pick(IntelKind.fraud_number, typology, rng, types)
    return entry.value, entry.counterpart_type


def _phishing_url(intel: Intel, typology: Typology, rng) -> str:
    """Either a listed URL or any path on a listed domain."""
    if rng.random() < 0.5:
        return intel.pick(IntelKind.phishing_url, typology, rng).value
    return f"https://{intel.pick(IntelKind.phishing_domain, typology, rng).value}/s/{rng.getrandbits(24):06x}"


def _mule(intel: Intel, typology: Typology, rng) -> IntelEntry:
    return intel.pick(IntelKind.mule_account, typology, rng)


# ------------------------------------------------------------------ fraud typologies
def impersonate_police(p: Person, intel: Intel, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """冒充公检法: a long call from abroad / a VoIP gateway, screen sharing while banking, a 'safe account'."""
    number, ctype = _fraud_number(intel, T.impersonate_police, rng)
    out = [_call(ids, p, start, number, ctype, duration_s=rng.randint(900, 2700), flagged=rng.random() < 0.3)]
    out.append(app_report(ids, p, start + timedelta(minutes=rng.randint(5, 9)), ReportKind.screen_sharing, banking=True))
    mule = _mule(intel, T.impersonate_police, rng)
    loss = money(rng, 30_000, 300_000, 1000)
    paid_at = start + timedelta(minutes=rng.randint(11, 14))
    _pay(ids, p, paid_at, mule.value, mule.bank, loss, rng, out)
    _maybe_case(ids, p, T.impersonate_police, paid_at, loss, rng, out)
    return Scenario("impersonate_police", T.impersonate_police, p.person_id, out, expect_funds_warning=True)


def investment(p: Person, intel: Intel, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """投资理财: an SMS with a phishing link, a fake trading app, growing transfers to new payees."""
    number, ctype = _fraud_number(intel, T.investment, rng)
    out = [_sms(ids, p, start, number, ctype, urls=[_phishing_url(intel, T.investment, rng)])]
    apk = intel.pick(IntelKind.fraud_apk, T.investment, rng).value
    out.append(app_report(ids, p, start + timedelta(hours=rng.randint(1, 3)), ReportKind.fraud_app_installed, apk=apk))
    listed_last = rng.random() < 0.75
    at, loss, amount = start + timedelta(hours=4), Decimal(0), rng.randint(2, 5) * 1000
    n_transfers = rng.randint(3, 4)
    for n in range(n_transfers):
        if n == n_transfers - 1 and listed_last:
            mule = _mule(intel, T.investment, rng)
            payee, bank = mule.value, mule.bank
        else:
            payee, bank = fresh_account(rng)
        _pay(ids, p, at, payee, bank, Decimal(amount), rng, out)
        loss += amount
        at, amount = at + timedelta(hours=rng.randint(3, 20)), amount * rng.randint(2, 4)
    _maybe_case(ids, p, T.investment, at, loss, rng, out)
    return Scenario("investment", T.investment, p.person_id, out, expect_funds_warning=listed_last)


def order_brushing(p: Person, intel: Intel, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """刷单返利: an SMS with a link, small 'orders' that are refunded with a rebate, then a big one."""
    if rng.random() < 0.5:
        number, ctype = intel.number_in_range(T.order_brushing, rng)
    else:
        number, ctype = _fraud_number(intel, T.order_brushing, rng)
    out = [_sms(ids, p, start, number, ctype, urls=[_phishing_url(intel, T.order_brushing, rng)])]
    payee, bank = fresh_account(rng)
    account = p.accounts[0]
    at = start + timedelta(minutes=rng.randint(10, 40))
    out.append(_bank(ids, p, account, at, BankKind.payee_added, counterparty=payee, counterparty_bank=bank))
    for _ in range(rng.randint(2, 3)):
        amount = money(rng, 20, 300)
        at += timedelta(minutes=rng.randint(3, 12))
        out.append(_bank(ids, p, account, at, BankKind.transfer_out, counterparty=payee, counterparty_bank=bank,
                         amount=amount, new_payee=True, channel=BankChannel.third_party_payment))
        rebate = (amount * Decimal(rng.choice(("1.1", "1.2", "1.3")))).quantize(Decimal("0.01"))
        at += timedelta(minutes=rng.randint(2, 8))
        out.append(_bank(ids, p, account, at, BankKind.transfer_in, counterparty=payee, counterparty_bank=bank,
                         amount=rebate, channel=BankChannel.third_party_payment))
    listed = rng.random() < 0.7
    if listed:
        mule = _mule(intel, T.order_brushing, rng)
        payee, bank = mule.value, mule.bank
    else:
        payee, bank = fresh_account(rng)
    loss = money(rng, 3_000, 30_000, 100)
    _pay(ids, p, at + timedelta(minutes=rng.randint(5, 30)), payee, bank, loss, rng, out)
    _maybe_case(ids, p, T.order_brushing, at, loss, rng, out)
    return Scenario("order_brushing", T.order_brushing, p.person_id, out, expect_funds_warning=listed)


def fake_loan(p: Person, intel: Intel, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """贷款: a call from a virtual operator number, then 'deposit', 'fee' and 'unfreezing' transfers."""
    if rng.random() < 0.5:
        number, ctype = intel.number_in_range(T.fake_loan, rng)
    else:
        number, ctype = _fraud_number(intel, T.fake_loan, rng, (CounterpartType.virtual_operator,))
    out = [_call(ids, p, start, number, ctype, duration_s=rng.randint(180, 600))]
    if rng.random() < 0.5:
        out.append(_sms(ids, p, start + timedelta(minutes=8), number, ctype, urls=[_phishing_url(intel, T.fake_loan, rng)]))
    listed = rng.random() < 0.6
    mule = _mule(intel, T.fake_loan, rng)
    payee, bank = (mule.value, mule.bank) if listed else fresh_account(rng)
    at, loss = start + timedelta(minutes=rng.randint(20, 60)), Decimal(0)
    for n in range(rng.randint(1, 3)):
        amount = money(rng, 500, 5_000, 100)
        if n == 0:
            _pay(ids, p, at, payee, bank, amount, rng, out)
        else:
            out.append(_bank(ids, p, p.accounts[0], at, BankKind.transfer_out, counterparty=payee,
                             counterparty_bank=bank, amount=amount, new_payee=True))
        loss += amount
        at += timedelta(minutes=rng.randint(15, 90))
    _maybe_case(ids, p, T.fake_loan, at, loss, rng, out)
    return Scenario("fake_loan", T.fake_loan, p.person_id, out, expect_funds_warning=listed)


def fake_customer_service(p: Person, intel: Intel, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """冒充客服: a 'refund' call from a listed number, a remote-control app during banking, a transfer."""
    number, ctype = _fraud_number(intel, T.fake_customer_service, rng)
    out = [_call(ids, p, start, number, ctype, duration_s=rng.randint(600, 1800), flagged=rng.random() < 0.3)]
    if rng.random() < 0.5:
        apk = intel.pick(IntelKind.fraud_apk, T.fake_customer_service, rng).value
        out.append(app_report(ids, p, start + timedelta(minutes=3), ReportKind.fraud_app_installed, apk=apk))
    out.append(app_report(ids, p, start + timedelta(minutes=rng.randint(5, 9)), ReportKind.remote_control, banking=True))
    mule = _mule(intel, T.fake_customer_service, rng)
    loss = money(rng, 5_000, 80_000, 100)
    paid_at = start + timedelta(minutes=rng.randint(10, 15))
    _pay(ids, p, paid_at, mule.value, mule.bank, loss, rng, out)
    _maybe_case(ids, p, T.fake_customer_service, paid_at, loss, rng, out)
    return Scenario("fake_customer_service", T.fake_customer_service, p.person_id, out, expect_funds_warning=True)


def romance(p: Person, intel: Intel, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """杀猪盘: days of calls and messages with one foreign number, then 'investing together'."""
    number, ctype = _fraud_number(intel, T.romance, rng)
    out, at = [], start
    for _ in range(rng.randint(4, 8)):
        direction = rng.choice((Direction.incoming, Direction.outgoing))
        if rng.random() < 0.5:
            out.append(_call(ids, p, at, number, ctype, direction=direction, duration_s=rng.randint(60, 1800)))
        else:
            out.append(_sms(ids, p, at, number, ctype, direction=direction))
        at += timedelta(hours=rng.randint(8, 36))
    if rng.random() < 0.6:
        out.append(_sms(ids, p, at, number, ctype, urls=[_phishing_url(intel, T.romance, rng)]))
    if rng.random() < 0.5:
        apk = intel.pick(IntelKind.fraud_apk, T.romance, rng).value
        out.append(app_report(ids, p, at + timedelta(hours=1), ReportKind.fraud_app_installed, apk=apk))
    mule = _mule(intel, T.romance, rng)
    loss, amount = Decimal(0), rng.randint(1, 5) * 10_000
    for n in range(rng.randint(2, 3)):
        at += timedelta(hours=rng.randint(6, 30))
        if n == 0:
            _pay(ids, p, at, mule.value, mule.bank, Decimal(amount), rng, out)
        else:
            out.append(_bank(ids, p, p.accounts[0], at, BankKind.transfer_out, counterparty=mule.value,
                             counterparty_bank=mule.bank, amount=Decimal(amount), new_payee=True))
        loss, amount = loss + amount, amount * 2
    _maybe_case(ids, p, T.romance, at, loss, rng, out)
    return Scenario("romance", T.romance, p.person_id, out, expect_funds_warning=True)


FraudBuilder = Callable[[Person, Intel, datetime, random.Random, EventIds], Scenario]
FRAUD_BUILDERS: dict[Typology, FraudBuilder] = {
    T.impersonate_police: impersonate_police,
    T.investment: investment,
    T.order_brushing: order_brushing,
    T.fake_loan: fake_loan,
    T.fake_customer_service: fake_customer_service,
    T.romance: romance,
}
assert set(FRAUD_BUILDERS) == set(FRAUD_TYPOLOGIES)

# Who each typology tends to reach (the vulnerable groups the brief names).
PREFERRED_VICTIM: dict[Typology, Callable[[Person], bool]] = {
    T.impersonate_police: lambda p: p.elderly,
    T.investment: lambda p: p.age_band.value in ("26_40", "41_59"),
    T.order_brushing: lambda p: p.student,
    T.fake_loan: lambda p: p.age_band.value in ("18_25", "26_40"),
    T.fake_customer_service: lambda p: p.elderly or p.age_band.value == "41_59",
    T.romance: lambda p: p.age_band.value in ("26_40", "41_59"),
}


# ------------------------------------------------------------------ ordinary life
DELIVERY_PREFIX = "+861069"  # SP short-message numbers (106…): couriers, banks, shops


def resident_call(caller: Person, callee: Person, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """A call between two residents: each one's carrier reports its own side."""
    answered = rng.random() < 0.85
    duration = rng.randint(5, 900) if answered else 0
    ctype = CounterpartType.domestic_mobile
    out = [
        _call(ids, caller, start, callee.phone, ctype, direction=Direction.outgoing, answered=answered, duration_s=duration),
        _call(ids, callee, start, caller.phone, ctype, direction=Direction.incoming, answered=answered, duration_s=duration),
    ]
    return Scenario("resident_call", None, caller.person_id, out)


def resident_sms(sender: Person, receiver: Person, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    ctype = CounterpartType.domestic_mobile
    out = [
        _sms(ids, sender, start, receiver.phone, ctype, direction=Direction.outgoing),
        _sms(ids, receiver, start, sender.phone, ctype),
    ]
    return Scenario("resident_sms", None, sender.person_id, out)


def delivery_sms(p: Person, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """A courier's pickup notice, often with a tracking link on a benign domain."""
    sender = f"{DELIVERY_PREFIX}{rng.randrange(10**9):09d}"
    urls = [f"https://kd.example/t/{rng.getrandbits(32):08x}"] if rng.random() < 0.6 else []
    return Scenario("delivery_sms", None, p.person_id, [_sms(ids, p, start, sender, CounterpartType.domestic_fixed, urls=urls)])


def salary(p: Person, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """Monthly pay from one of the city's employers (a known payer)."""
    employer = rng.randrange(200)
    token = "acct_" + hashlib.blake2b(f"employer:{employer}".encode(), digest_size=10).hexdigest()
    account = p.accounts[0]
    offer = _bank(ids, p, account, start, BankKind.transfer_in, counterparty=token,
                  counterparty_bank=RESIDENT_BANKS[employer % len(RESIDENT_BANKS)], amount=money(rng, 2_000, 15_000),
                  channel=BankChannel.online_banking)
    return Scenario("salary", None, p.person_id, [offer])


def known_payee_transfer(p: Person, payee: Person, start: datetime, rng: random.Random, ids: EventIds) -> Scenario:
    """Money to family or a shop already in the payee list: not new, small to medium."""
    account = p.accounts[rng.randrange(len(p.accounts))]
    target = payee.accounts[0]
    channel = rng.choice((BankChannel.mobile_banking, BankChannel.third_party_payment, BankChannel.counter))
    offer = _bank(ids, p, account, start, BankKind.transfer_out, counterparty=target.token,
                  counterparty_bank=target.bank, amount=money(rng, 10, 3_000), channel=channel)
    return Scenario("known_payee_transfer", None, p.person_id, [offer])
