"""Builders of enriched signals for scoring tests: readable scenarios, synthetic values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from streams.contracts.alerts import EnrichedSignal, IntelHit, Jurisdiction, Vulnerability
from streams.contracts.common import Typology
from streams.contracts.reference import AgeBand, IntelKind
from streams.contracts.signals import (
    AppReport,
    BankChannel,
    BankEvent,
    BankKind,
    Carrier,
    CounterpartType,
    Direction,
    ReportKind,
    ReportSource,
    TelecomEvent,
    TelecomKind,
)

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RESIDENT = "+8613800000001"
_seq = iter(range(1, 10**9))


def _base(minutes: float, person: str, elderly: bool, hits: list[IntelHit]) -> dict:
    n = next(_seq)
    t = T0 + timedelta(minutes=minutes)
    return dict(
        event_id=f"ev-{n}",
        event_time=t,
        ingested_at=t,
        person_id=person,
        identity_resolved=True,
        jurisdiction=Jurisdiction("ZK01", "ZK01-PS01", "ZK01-PS01-G01"),
        vulnerability=Vulnerability(AgeBand.age_70_plus if elderly else AgeBand.age_26_40, elderly=elderly),
        phone=RESIDENT,
        intel=hits,
    )


def hit(kind: IntelKind, typology: Typology, matched_on: str, confidence: float = 0.9) -> IntelHit:
    return IntelHit(kind=kind, matched_on=matched_on, typology=typology, confidence=confidence, source="test")


def call(minutes: float, duration_s: int, counterpart="+8617000000002", ctype=CounterpartType.virtual_operator,
         listed: Typology | None = None, answered=True, person="P1", elderly=False,
         listed_as: IntelKind = IntelKind.fraud_number) -> EnrichedSignal:
    """listed_as: the list the counterpart matched, a single number or a number range (号段)."""
    hits = [hit(listed_as, listed, "counterpart")] if listed else []
    base = _base(minutes, person, elderly, hits)
    event = TelecomEvent(
        event_id=base["event_id"], event_time=base["event_time"], carrier=Carrier.china_mobile, kind=TelecomKind.call,
        direction=Direction.incoming, subscriber=RESIDENT, counterpart=counterpart, counterpart_type=ctype,
        cell_id="ZK01-C0001", answered=answered, duration_s=duration_s,
    )
    return EnrichedSignal(**base, telecom=event)


def sms(minutes: float, url_typology: Typology | None = None, person="P1") -> EnrichedSignal:
    hits = [hit(IntelKind.phishing_domain, url_typology, "sms_url")] if url_typology else []
    base = _base(minutes, person, False, hits)
    event = TelecomEvent(
        event_id=base["event_id"], event_time=base["event_time"], carrier=Carrier.china_mobile, kind=TelecomKind.sms,
        direction=Direction.incoming, subscriber=RESIDENT, counterpart="+8610690000001",
        counterpart_type=CounterpartType.domestic_fixed, cell_id="ZK01-C0001", sms_urls=["https://x.test/a"],
    )
    return EnrichedSignal(**base, telecom=event)


def transfer(minutes: float, amount: str, new_payee=False, mule: Typology | None = None, person="P1",
             elderly=False) -> EnrichedSignal:
    hits = [hit(IntelKind.mule_account, mule, "counterparty_account")] if mule else []
    base = _base(minutes, person, elderly, hits)
    event = BankEvent(
        event_id=base["event_id"], event_time=base["event_time"], bank="ICBC", kind=BankKind.transfer_out,
        account="acct_0001", branch_code="ICBC-ZK01-01", channel=BankChannel.mobile_banking,
        counterparty_account="acct_9999", amount=Decimal(amount), payee_is_new=new_payee,
    )
    return EnrichedSignal(**base, bank=event)


def report(minutes: float, kind: ReportKind, banking=False, person="P1", apk_typology: Typology | None = None) -> EnrichedSignal:
    hits = [hit(IntelKind.fraud_apk, apk_typology, "apk")] if apk_typology else []
    base = _base(minutes, person, False, hits)
    event = AppReport(
        event_id=base["event_id"], event_time=base["event_time"], source=ReportSource.antifraud_app, kind=kind,
        reporter_phone=RESIDENT, during_banking_session=banking,
        apk_sha256="ab" * 32 if kind is ReportKind.fraud_app_installed else None,
    )
    return EnrichedSignal(**base, app=event)
