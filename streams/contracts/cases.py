"""Police case reports from the city case system (警综平台)."""

from decimal import Decimal

from streams.contracts.common import (
    AccountToken,
    Code,
    Contract,
    EventId,
    RawPhone,
    Timestamp,
    Typology,
    check_money,
    described,
    normalize_phone,
    to_cents,
)


class CaseReport(Contract):
    """发案: a fraud case filed; triggers the reverse audit when the victim had been warned."""

    event_id: EventId
    event_time: described(Timestamp, "When the case was filed (立案/报案时间).")
    case_id: described(Code, "Case number in the case system.")
    occurred_at: described(Timestamp, "When the fraud happened.")
    typology: described(Typology, "Fraud typology of the case (案件类型).")
    county: described(Code, "County of the filing unit.")
    station: described(Code, "Police station that filed it.")
    victim_phone: described(
        RawPhone | None, "Victim's number, E.164 after ingest; this or victim_account is required."
    ) = None
    victim_account: described(AccountToken | None, "Victim's account token; this or victim_phone is required.") = None
    loss_amount: described(Decimal | None, "Reported loss in CNY (损失金额).") = None

    def __post_init__(self) -> None:
        if self.victim_phone is None and self.victim_account is None:
            raise ValueError("a case needs victim_phone or victim_account")
        if self.victim_phone is not None:
            self.victim_phone = normalize_phone(self.victim_phone, "victim_phone")
        if self.loss_amount is not None:
            check_money(self.loss_amount, "loss_amount")
            self.loss_amount = to_cents(self.loss_amount)
