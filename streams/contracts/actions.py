"""Dissuasion records: actions for the channels, their outcomes, escalations, and partner requests."""

from decimal import Decimal
from enum import Enum

from msgspec import Struct

from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import Timestamp, Typology, check_money, described, to_cents
from streams.contracts.rules_versions import SHIPPED_RULES_VERSION


class Channel(str, Enum):
    """劝阻渠道."""

    sms = "sms"  # 自动短信
    ai_voice = "ai_voice"  # AI语音
    hotline_call = "hotline_call"  # 96110 人工电话
    app_push = "app_push"  # 金钟罩 APP 推送
    police_visit = "police_visit"  # 辖区民警上门
    line_suspension = "line_suspension"  # 关停涉诈风险手机号码


class Target(Struct, forbid_unknown_fields=True):
    """Who the channel reaches: a phone for SMS/voice/call/app, a unit for visits, a carrier for suspensions."""

    phone: described(str | None, "E.164 phone for sms, ai_voice, hotline_call, app_push, line_suspension.") = None
    station: described(str | None, "Police station that makes the visit.") = None
    grid: str | None = None
    carrier: described(str | None, "Carrier that suspends the line.") = None
    # Optional with a default, so actions and alert_state written before it still decode.
    station_reason: described(
        str | None,
        "Why a visit goes to a duty desk (值班台) and not the person's station: no registered home, cell or branch "
        "placed them. None when it goes to their station.",
    ) = None


class Action(Struct, forbid_unknown_fields=True):
    """劝阻指令: one dissuasion step for one alert on one channel."""

    action_id: described(str, "Deterministic from alert id, version, channel and reason: a replay has the same id.")
    alert_id: str
    alert_version: int
    person_id: str
    channel: Channel
    tier: Tier
    typology: Typology
    target: Target
    jurisdiction: Jurisdiction
    priority: described(int, "0 is the highest; funds warnings are 0.", ge=0, le=9)
    deadline: described(Timestamp, "SLA: the outcome is due by then.")
    script_key: described(str, "Key of the dissuasion script (劝阻话术) for the warning type.")
    reason: described(str, "initial, upgrade, escalation:<why>, sla_breach.")
    attempt: int = 1
    created_at: Timestamp | None = None
    # Optional with a default, so actions and alert_state written before versions were stamped still decode.
    rules_version: described(
        str, "The rules version (routing included) in force when the action was planned (docs/rules.md)."
    ) = SHIPPED_RULES_VERSION


class Result(str, Enum):
    delivered = "delivered"  # 已送达
    answered = "answered"  # 已接听
    dissuaded = "dissuaded"  # 劝阻成功
    refused = "refused"  # 拒绝劝阻 (not dissuaded)
    unreachable = "unreachable"  # 无法联系
    failed = "failed"  # 渠道失败


FINAL_RESULTS = {Result.dissuaded, Result.refused}


class DeskFinding(str, Enum):
    """What a person at the desk (officer, operator) recorded; each maps to one Result (DESK_RESULTS)."""

    dissuaded = "dissuaded"  # 劝阻成功
    not_reached = "not_reached"  # 未联系上
    refused = "refused"  # 拒绝劝阻
    money_already_sent = "money_already_sent"  # 已被骗/已转账: too late, with the amount
    false_alarm = "false_alarm"  # 误报: not a fraud


# money_already_sent is "not dissuaded": escalation protects the accounts as for a refusal. A false
# alarm reached the person and is not a dissuasion (no success counted); closing the alert on it is next.
DESK_RESULTS = {
    DeskFinding.dissuaded: Result.dissuaded,
    DeskFinding.not_reached: Result.unreachable,
    DeskFinding.refused: Result.refused,
    DeskFinding.money_already_sent: Result.refused,
    DeskFinding.false_alarm: Result.answered,
}


class Outcome(Struct, forbid_unknown_fields=True):
    """劝阻反馈: what happened when a channel carried out an action."""

    outcome_id: described(str, "Deterministic from the action id: one outcome per action attempt.")
    action_id: str
    alert_id: str
    person_id: str
    channel: Channel
    result: Result
    started_at: described(Timestamp, "When the contact policy let the contact go (and counted it); the send follows at once.")
    finished_at: Timestamp
    attempt: int = 1
    detail: described(str, "Gateway's words; never a phone number.") = ""
    # Optional with defaults, so outcomes written before the desk still decode.
    finding: described(DeskFinding | None, "What the desk recorded (police_visit, hotline_call tasks); None from "
                       "a gateway.") = None
    amount_sent: described(Decimal | None, "CNY already sent, with finding money_already_sent.") = None

    def __post_init__(self):
        if self.amount_sent is not None:
            check_money(self.amount_sent, "amount_sent")
            self.amount_sent = to_cents(self.amount_sent)
