"""A week of synthetic warnings over three counties, for the dashboard test and its screenshot.

Seeded: the same data every run. Loads the stories into a ledger, then audits the cases
with the real audit judgement and loads the audit records too, as the ledger would.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from ledger_data import load
from scenario import T0, Story, reach_back
from sqlalchemy import select

from oversight import schema
from oversight.audit import build_audit
from oversight.contracts import FollowupResult, FollowupTask
from streams.contracts import Channel, Result, Tier
from streams.contracts.alerts import ReachBack
from streams.contracts.common import Typology
from streams.contracts.dissuasion import EscalationReason
from streams.contracts.reference import IntelKind

STATIONS = [("ZK01", "ZK01-PS01"), ("ZK01", "ZK01-PS02"), ("ZK02", "ZK02-PS01"), ("ZK02", "ZK02-PS03"),
            ("ZK03", "ZK03-PS01"), ("ZK03", "ZK03-PS02")]
TYPOLOGIES = [Typology.investment, Typology.order_brushing, Typology.impersonate_police, Typology.fake_customer_service,
              Typology.romance, Typology.fake_loan]
TIER_CHANNELS = {Tier.low: [Channel.sms, Channel.ai_voice], Tier.medium: [Channel.hotline_call, Channel.app_push],
                 Tier.high: [Channel.hotline_call, Channel.police_visit], Tier.funds_warning: [Channel.police_visit]}


def demo_stories(count: int = 90, seed: int = 5) -> list[Story]:
    rng = random.Random(seed)
    stories = []
    for n in range(count):
        county, station = rng.choice(STATIONS)
        s = Story(f"P-DEMO-{n:03d}", f"+86138{n:08d}", county=county, station=station,
                  grid=f"{station}-G{rng.randint(1, 9):02d}", account=f"acct-demo-{n:03d}")
        start = rng.randint(0, 7 * 24 * 60 - 120)
        tier = rng.choices(list(TIER_CHANNELS), weights=[5, 4, 2, 1])[0]
        alert_id = f"DEMO-{n:03d}"
        s.alert(alert_id, start, tier=tier, typology=rng.choice(TYPOLOGIES), events=(f"ev-demo-{n}-1", f"ev-demo-{n}-2"),
                reach_back=demo_reach_back(n, start, tier))
        minute = start
        result = None
        for channel in TIER_CHANNELS[tier]:
            minute += rng.randint(1, 20)
            action = s.action(alert_id, channel, minute, sla_minutes=60 if channel is Channel.police_visit else 30)
            roll = rng.random()
            result = (Result.dissuaded if roll < 0.78 else Result.unreachable if roll < 0.9 else Result.refused)
            if channel is Channel.sms:
                result = Result.delivered
            s.outcome(action, result, minute + rng.randint(1, 40))
        if tier is Tier.high:
            s.carrier_request(f"CR-DEMO-{n:03d}", start + 1)  # 关停涉诈风险手机号码
        if result in (Result.refused, Result.unreachable) and rng.random() < 0.6:
            s.escalation(alert_id, EscalationReason(result.value), minute + 45)
        if rng.random() < 0.08:
            s.case(f"CASE-DEMO-{n:03d}", start + rng.randint(600, 3000), loss=f"{rng.randint(5, 300) * 1000}.00",
                   typology=s._alerts[alert_id].typology)
        stories.append(s)
    return stories


RETRO_SOURCES = ("carrier", "case_review", "mps_list", "bank")


def demo_reach_back(n: int, start: int, tier: Tier) -> ReachBack | None:
    """Every seventh warning is a retro alert (回溯预警): listed at its alert, the contact before it.
    Chosen by position, not drawn: the rest of the demo stays what it was."""
    if n % 7 != 3:
        return None
    kind = IntelKind.mule_account if tier is Tier.funds_warning else IntelKind.fraud_number
    return reach_back(start, start - 13 * (n % 5 + 1), source=RETRO_SOURCES[n % 4], kind=kind,
                      event_id=f"ev-demo-{n}-2")


def load_demo(engine, count: int = 90) -> list[Story]:
    stories = demo_stories(count)
    load(engine, stories)
    audits = Story("audit-source", "+8613800000000")
    with engine.connect() as conn:
        cases = [envelope.event for story in stories for tid, _k, envelope in story.records if tid == "norm_case"]
        for case in cases:
            person = next(s.person_id for s in stories if s.phone == case.victim_phone)
            record = build_audit(conn, case, {person}, 90, 600, audited_at=case.event_time + timedelta(minutes=5))
            if record is not None:
                audits.records.append(("audits", b"", record))
        dissuaded = conn.execute(select(schema.alert_status).where(schema.alert_status.c.status == "dissuaded")
                                 .order_by(schema.alert_status.c.alert_id).limit(6)).mappings().all()
    for n, row in enumerate(dissuaded):
        task = FollowupTask(task_id=f"FU-DEMO-{n}", period_start=T0, period_end=T0 + timedelta(days=1),
                            person_id=row["person_id"], alert_id=row["alert_id"], county=row["county"],
                            station=row["station"], grid=row["grid"], dissuaded_at=T0, due_at=T0 + timedelta(days=8),
                            seed=1)
        audits.records.append(("followup_tasks", b"", task))
        if n < 4:
            followup = Story(row["person_id"], "+8613800000000", station=row["station"])
            result = FollowupResult.not_dissuaded if n == 0 else FollowupResult.confirmed
            followup.followup(task.task_id, row["alert_id"], result, 8 * 24 * 60)
            audits.records += followup.records
    load(engine, [audits])
    return stories


def demo_now() -> datetime:
    return T0 + timedelta(days=8)
