"""Signals about residents: carrier traffic, bank activity, anti-fraud app and hotline reports."""


from decimal import Decimal
from enum import Enum

from msgspec import field

from streams.contracts.common import (
    AccountToken,
    Code,
    Contract,
    EventId,
    RawPhone,
    Sha256,
    Timestamp,
    Url,
    check_money,
    described,
    normalize_phone,
    to_cents,
)


class Carrier(str, Enum):
    china_mobile = "china_mobile"
    china_unicom = "china_unicom"
    china_telecom = "china_telecom"
    china_broadnet = "china_broadnet"


class TelecomKind(str, Enum):
    call = "call"
    sms = "sms"


class Direction(str, Enum):
    incoming = "incoming"  # counterpart -> resident
    outgoing = "outgoing"  # resident -> counterpart


class CounterpartType(str, Enum):
    domestic_mobile = "domestic_mobile"
    domestic_fixed = "domestic_fixed"
    international = "international"  # 境外来电
    voip_gateway = "voip_gateway"  # 网络改号 / VoIP 网关
    virtual_operator = "virtual_operator"  # 虚拟运营商 170/171
    unknown = "unknown"


class TelecomEvent(Contract):
    """运营商话单: one call or SMS between a resident (subscriber) and a counterpart."""

    event_id: EventId
    event_time: described(Timestamp, "Call start or SMS time.")
    carrier: described(Carrier, "Carrier that reports the record (运营商).")
    kind: described(TelecomKind, "call or sms.")
    direction: described(Direction, "Seen from the resident: incoming or outgoing.")
    subscriber: described(RawPhone, "The resident's number (本地用户号码), E.164 after ingest.")
    counterpart: described(RawPhone, "The other party's number (对端号码), E.164 after ingest.")
    counterpart_type: described(CounterpartType, "Carrier's class of the counterpart number.")
    cell_id: described(Code, "Serving cell (基站小区) of the resident; locates them when unregistered.")
    answered: described(bool, "The call was answered (false for SMS).") = False
    duration_s: described(int, "Call duration in seconds (0 for SMS).", ge=0, le=86400) = 0
    carrier_flagged: described(bool, "The carrier's own anti-fraud system flagged the counterpart (运营商标记).") = False
    sms_urls: described(
        list[Url], "URLs the carrier extracted from the SMS text (the text itself never leaves the carrier).", max_length=10
    ) = field(default_factory=list)

    def __post_init__(self) -> None:
        self.subscriber = normalize_phone(self.subscriber, "subscriber")
        self.counterpart = normalize_phone(self.counterpart, "counterpart")
        if self.kind is TelecomKind.sms and self.duration_s:
            raise ValueError("an SMS has no duration")


class BankKind(str, Enum):
    transfer_out = "transfer_out"  # 转出
    transfer_in = "transfer_in"  # 转入
    payee_added = "payee_added"  # 新增收款人


class BankChannel(str, Enum):
    mobile_banking = "mobile_banking"
    online_banking = "online_banking"
    atm = "atm"
    counter = "counter"  # 柜面
    third_party_payment = "third_party_payment"


class BankEvent(Contract):
    """银行流水: a transfer or a new payee on a resident's account."""

    event_id: EventId
    event_time: described(Timestamp, "Time of the transaction.")
    bank: described(Code, "Code of the bank that holds the account (开户行), e.g. ICBC.")
    kind: described(BankKind, "transfer_out, transfer_in or payee_added.")
    account: described(AccountToken, "The resident's account token.")
    branch_code: described(Code, "Branch (网点) of the account; locates the holder when unregistered.")
    channel: described(BankChannel, "Where the customer acted; counter business is face to face (柜面).")
    holder_phone: described(RawPhone | None, "Phone the bank holds for the customer, E.164 after ingest.") = None
    counterparty_account: described(AccountToken | None, "Payee / payer account token; required for transfers.") = None
    counterparty_bank: described(Code | None, "Bank of the counterparty account.") = None
    amount: described(Decimal | None, "CNY, 2 decimals; required for transfers.") = None
    payee_is_new: described(bool, "The payee was first used within 24 h (新收款人).") = False

    def __post_init__(self) -> None:
        if self.holder_phone is not None:
            self.holder_phone = normalize_phone(self.holder_phone, "holder_phone")
        if self.kind is BankKind.payee_added:
            if self.amount is not None:
                check_money(self.amount, "amount")
                self.amount = to_cents(self.amount)
            return
        if self.amount is None:
            raise ValueError("a transfer needs an amount")
        if self.counterparty_account is None:
            raise ValueError("a transfer needs a counterparty_account")
        check_money(self.amount, "amount")
        self.amount = to_cents(self.amount)


class ReportSource(str, Enum):
    antifraud_app = "antifraud_app"  # 金钟罩 APP
    hotline_96110 = "hotline_96110"  # 96110 反诈专线


class ReportKind(str, Enum):
    suspicious_call = "suspicious_call"  # 可疑来电举报
    suspicious_sms = "suspicious_sms"  # 可疑短信举报
    fraud_app_installed = "fraud_app_installed"  # 涉诈APP安装
    screen_sharing = "screen_sharing"  # 屏幕共享
    remote_control = "remote_control"  # 远程控制
    self_report = "self_report"  # 本人求助


class AppReport(Contract):
    """金钟罩 APP / 96110 report: what the resident's phone saw, or what they told the hotline."""

    event_id: EventId
    event_time: described(Timestamp, "When the app detected it or the call was taken.")
    source: described(ReportSource, "antifraud_app (金钟罩) or hotline_96110.")
    kind: described(ReportKind, "What was reported.")
    reporter_phone: described(RawPhone, "The resident's number, E.164 after ingest.")
    counterpart: described(RawPhone | None, "Number the report is about, if any.") = None
    url: described(Url | None, "URL the report is about, if any.") = None
    apk_sha256: described(
        Sha256 | None, "SHA-256 of the installed package (涉诈APK); required for fraud_app_installed."
    ) = None
    during_banking_session: described(
        bool, "Screen sharing / remote control while a banking app was open."
    ) = False

    def __post_init__(self) -> None:
        self.reporter_phone = normalize_phone(self.reporter_phone, "reporter_phone")
        if self.counterpart is not None:
            self.counterpart = normalize_phone(self.counterpart, "counterpart")
        if self.apk_sha256 is not None:
            self.apk_sha256 = self.apk_sha256.lower()
        if self.kind is ReportKind.fraud_app_installed and self.apk_sha256 is None:
            raise ValueError("fraud_app_installed needs apk_sha256")
