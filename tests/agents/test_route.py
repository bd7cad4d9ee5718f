"""Route: each tier's actions on the right topics, upgrades add only the higher tier, replays repeat the ids.

The unit part plans single alerts; the integration part runs a real `antifraud worker` on
its own embedded broker and Valkey and reads what it sends.
"""

from __future__ import annotations

import json
from datetime import timedelta

import msgspec
import pytest
from confluent_kafka import Producer

from dissuasion_builders import PHONE, alert, new_person
from streams.catalog import get_catalog
from streams.contracts.actions import Action, Channel
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import Typology
from streams.contracts.dissuasion import CarrierReasonCode, CarrierRequest
from streams.dissuasion import plan_for_alert
from streams.kafka import producer_config
from streams.routing import carrier_key, get_partners, get_routing
from streams.signing import verify
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()
ROUTING, PARTNERS = get_routing(), get_partners()
ENCODE = msgspec.json.Encoder().encode
TIER_CHANNELS = {
    Tier.low: {Channel.sms, Channel.ai_voice},
    Tier.medium: {Channel.hotline_call, Channel.app_push},
    Tier.high: {Channel.police_visit, Channel.line_suspension},
    Tier.funds_warning: {Channel.police_visit},
}


# ----------------------------------------------------------------------------------- unit
@pytest.mark.parametrize("tier", list(Tier))
def test_each_tier_plans_its_channels(tier):
    a = alert(new_person(), tier, typology=Typology.romance)
    planned_tier, planned = plan_for_alert(a, ROUTING, PARTNERS)
    assert planned_tier is tier
    assert {p.action.channel for p in planned} == TIER_CHANNELS[tier]
    for p in planned:
        action = p.action
        rule = next(r for r in ROUTING.tiers[tier].actions if r.channel is action.channel)
        assert (action.priority, action.reason, action.script_key) == (rule.priority, "initial", "script.romance.v1")
        assert action.deadline == a.alert_at + timedelta(seconds=rule.sla_s)
        if action.channel is Channel.police_visit:
            assert (action.target.station, action.target.grid, action.target.phone) == ("411602-PCS-03", "411602-03-017", None)
        else:
            assert action.target.phone == PHONE


def test_funds_warning_plans_an_emergency_visit_action_of_its_own_per_warning():
    person = new_person()
    first = plan_for_alert(alert(person, Tier.funds_warning, alert_id="FW-1"), ROUTING, PARTNERS)[1]
    second = plan_for_alert(alert(person, Tier.funds_warning, alert_id="FW-2"), ROUTING, PARTNERS)[1]
    assert [p.action.priority for p in first + second] == [0, 0]
    assert first[0].action.action_id != second[0].action.action_id and first[0].slot != second[0].slot


def test_upgrade_plans_only_the_higher_tier_and_a_lower_version_nothing():
    person = new_person()
    up = alert(person, Tier.high, alert_id="AL-up", version=2, previous_tier=Tier.low)
    assert {(p.action.channel, p.action.reason) for p in plan_for_alert(up, ROUTING, PARTNERS)[1]} == {
        (Channel.police_visit, "upgrade"), (Channel.line_suspension, "upgrade")}
    same = alert(person, Tier.low, alert_id="AL-up", version=3, previous_tier=Tier.high)
    assert plan_for_alert(same, ROUTING, PARTNERS) == (None, [])


def test_action_ids_are_deterministic():
    a = alert(new_person(), Tier.low)
    ids = [p.action.action_id for p in plan_for_alert(a, ROUTING, PARTNERS)[1]]
    assert ids == [p.action.action_id for p in plan_for_alert(a, ROUTING, PARTNERS)[1]]
    assert len(set(ids)) == 2


def test_without_a_phone_the_person_is_still_reached_by_a_visit():
    tier, planned = plan_for_alert(alert(new_person(), Tier.low, phone=None), ROUTING, PARTNERS)
    assert tier is Tier.high
    assert [(p.action.channel, p.action.reason) for p in planned] == [(Channel.police_visit, "escalation:no_phone")]


# ---------------------------------------------------------------------------- integration
# What enrich writes for a person not in the registry whose cell and bank branch are not registered either.
UNPLACED = Jurisdiction(county="unknown", station="unknown", grid="unknown")


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    own = worker_on_own_servers(tmp_path_factory.mktemp("route"))
    settings = own.settings
    yield settings
    own.stop()


def produce_alerts(settings, alerts) -> None:
    # murmur2, as the correlate agent's (aiokafka) producer keys them.
    producer = Producer(producer_config(settings, partitioner="murmur2_random"))
    for a in alerts:
        producer.produce(CATALOG.topic("alerts").name, key=a.person_id.encode(), value=ENCODE(a))
    assert producer.flush(30) == 0


class ActionTopics:
    """Readers of every action topic; records of the given alerts only."""

    def __init__(self, settings, alerts=()):
        self.planned = [p for a in alerts for p in plan_for_alert(a, ROUTING, PARTNERS)[1]]
        self.readers = {ch: Reader(settings.kafka_bootstrap_servers, CATALOG.topic(f"actions_{ch.value}").name)
                        for ch in Channel}

    def records(self, alert_ids: set[str], wait_for: int, timeout: float = 60) -> dict[Channel, list]:
        """Actions of the alerts, and line suspensions whose request id is one of their action ids."""
        found: dict[Channel, list] = {}
        planned_ids = {p.action.action_id for p in self.planned}

        def collect() -> int:
            for ch, reader in self.readers.items():
                reader.read_for(0.05)
                if ch is Channel.line_suspension:
                    requests = [msgspec.json.decode(m.value(), type=CarrierRequest) for m in reader.messages]
                    found[ch] = [r for r in requests if r.request_id in planned_ids]
                else:
                    actions = [msgspec.json.decode(m.value(), type=Action) for m in reader.messages]
                    found[ch] = [r for r in actions if r.alert_id in alert_ids]
            return sum(len(v) for v in found.values())

        first = next(iter(self.readers.values()))
        first.read_until(lambda _m: collect() >= wait_for, timeout=timeout)
        return found

    def settle(self, seconds: float) -> None:
        for reader in self.readers.values():
            reader.read_for(seconds / len(self.readers))

    def close(self):
        for reader in self.readers.values():
            reader.close()


def test_each_tier_lands_on_its_channel_topics(worker):
    alerts = {tier: alert(new_person(), tier) for tier in Tier}
    produce_alerts(worker, alerts.values())
    topics = ActionTopics(worker, alerts.values())
    found = topics.records({a.alert_id for a in alerts.values()}, wait_for=7)
    topics.close()
    for tier, a in alerts.items():
        channels = {ch for ch, records in found.items() if ch is not Channel.line_suspension
                    for r in records if r.alert_id == a.alert_id}
        assert channels == TIER_CHANNELS[tier] - {Channel.line_suspension}, tier
    [emergency] = [r for r in found[Channel.police_visit] if r.tier is Tier.funds_warning]
    assert emergency.priority == 0
    [suspension] = found[Channel.line_suspension]
    assert (suspension.carrier, suspension.phone, suspension.reason_code) == ("china_mobile", PHONE, CarrierReasonCode.high_risk_alert)
    assert alerts[Tier.high].alert_id not in json.dumps(msgspec.to_builtins(suspension))  # only an opaque reference
    assert verify(msgspec.to_builtins(suspension), carrier_key(worker, PARTNERS, "china_mobile"))


def test_an_unplaced_persons_emergency_visit_reaches_the_duty_desk_topic(worker):
    a = alert(new_person(), Tier.funds_warning, jurisdiction=UNPLACED, identity_resolved=False)
    produce_alerts(worker, [a])
    topics = ActionTopics(worker, [a])
    found = topics.records({a.alert_id}, wait_for=1)
    topics.close()
    [visit] = found[Channel.police_visit]
    assert (visit.priority, visit.target.station) == (0, "ZK-CENTRE-DUTY")
    assert visit.target.station_reason == "no registered home, cell or branch, county unknown: city centre duty desk"


def test_upgrade_adds_only_the_higher_tiers_actions(worker):
    person = new_person()
    first = alert(person, Tier.low)
    upgraded = alert(person, Tier.medium, alert_id=first.alert_id, version=2, previous_tier=Tier.low)
    produce_alerts(worker, [first, upgraded])
    topics = ActionTopics(worker)
    topics.records({first.alert_id}, wait_for=4)
    topics.settle(2.0)  # nothing more comes: the low tier is not sent again for version 2
    found = topics.records({first.alert_id}, wait_for=4)
    topics.close()
    sent = sorted((r.channel.value, r.reason, r.alert_version) for records in found.values() for r in records
                  if isinstance(r, Action))
    assert sent == [("ai_voice", "initial", 1), ("app_push", "upgrade", 2), ("hotline_call", "upgrade", 2),
                    ("sms", "initial", 1)]


def test_replayed_alerts_give_identical_action_ids(worker):
    alerts = [alert(new_person(), Tier.medium), alert(new_person(), Tier.high)]
    produce_alerts(worker, alerts)
    topics = ActionTopics(worker, alerts)
    ids = {a.alert_id for a in alerts}
    first = topics.records(ids, wait_for=4)
    first_ids = sorted(getattr(r, "action_id", None) or r.request_id for records in first.values() for r in records)
    produce_alerts(worker, alerts)  # the same records again, as after a crash before the commit
    again = topics.records(ids, wait_for=8)
    topics.close()
    again_ids = [getattr(r, "action_id", None) or r.request_id for records in again.values() for r in records]
    assert len(again_ids) == 8 and sorted(set(again_ids)) == first_ids
