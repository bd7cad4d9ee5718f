"""Escalate, end to end: a real `antifraud worker` on its own embedded broker and Valkey, a reference
bank in a thread, alerts, outcomes and transfers produced straight onto their topics.

The SLA of high-tier visits is 4 s here (a routing.yaml of the test's own), so the timer
is seen to fire without sleeping in the test: it waits for the records the timer causes.
Outcomes are produced with librdkafka's default partitioner, as a channel worker does; the
agent must still bring them to the person's alert_state. The last test restarts the
worker: its timer must find the deadlines in the state it recovers, not only in what it writes.
"""

from __future__ import annotations

import threading
import time
import zlib
from datetime import timedelta

import httpx
import msgspec
import pytest
import yaml
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from channels.gateways.base import GatewayReply
from channels.partners import bank_consumer_main
from channels.worker import ChannelWorker
from dissuasion_builders import alert, new_person, now, outcome, transfer
from streams.catalog import get_catalog
from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.contracts.alerts import Tier
from streams.contracts.dissuasion import BankRequest, Escalation, EscalationReason, RequestKind
from streams.dissuasion import person_partition
from streams.kafka import producer_config
from streams.routing import bank_key, bank_topic_id, get_partners
from streams.settings import PROJECT_ROOT
from streams.signing import verify
from support import Reader, read_records, worker_on_own_servers

CATALOG = get_catalog()
PARTNERS = get_partners()
ENCODE = msgspec.json.Encoder().encode
VISIT_SLA_S = 4


@pytest.fixture(scope="module")
def escalate_worker(tmp_path_factory):
    """The module's worker on its own servers, and the environment it runs with (a test restarts it)."""
    run_dir = tmp_path_factory.mktemp("escalate")
    routing = yaml.safe_load((PROJECT_ROOT / "routing.yaml").read_text())
    routing["tiers"]["high"]["actions"][0]["sla_s"] = VISIT_SLA_S
    routing["escalation"]["timer_interval_s"] = 0.5
    routing_file = run_dir / "routing.yaml"
    routing_file.write_text(yaml.safe_dump(routing, allow_unicode=True))

    env = {"ANTIFRAUD_ROUTING_FILE": str(routing_file)}
    own = worker_on_own_servers(run_dir, **env)
    stop = threading.Event()
    bank = threading.Thread(target=bank_consumer_main, args=(own.settings, "ICBC", stop), daemon=True)
    bank.start()
    yield own, env
    stop.set()
    bank.join(15)
    own.stop()


@pytest.fixture
def platform(escalate_worker):
    own, _env = escalate_worker
    return own.settings, own.worker  # the worker of the moment


def produce(settings, topic_id: str, records, partitioner: str = "murmur2_random") -> None:
    """murmur2 is what the platform's own (aiokafka) producers use; pass "consistent_random" to
    produce as a confluent-kafka client with its default partitioner does."""
    producer = Producer(producer_config(settings, partitioner=partitioner))
    for record in records:
        producer.produce(CATALOG.topic(topic_id).name, key=record.person_id.encode(), value=ENCODE(record))
    assert producer.flush(30) == 0


def produce_outcomes(settings, outcomes) -> None:
    produce(settings, "outcomes", outcomes, partitioner="consistent_random")


def read(settings, topic_id: str, decode_as, keep, count: int, timeout: float = 60.0) -> list:
    """The first `count` records of the topic that `keep` accepts."""
    return read_records(settings.kafka_bootstrap_servers, CATALOG.topic(topic_id).name, decode_as, keep, count, timeout)


def actions_of(settings, alert_id: str, channel: Channel, count: int, **match) -> list[Action]:
    def keep(a: Action) -> bool:
        return a.alert_id == alert_id and all(getattr(a, k) == v for k, v in match.items())

    return read(settings, f"actions_{channel.value}", Action, keep, count)


def escalations_of(settings, alert_id: str, count: int = 1) -> list[Escalation]:
    return read(settings, "escalations", Escalation, lambda e: e.alert_id == alert_id, count)


def metric(worker, name: str, **labels) -> float:
    text = httpx.get(worker.metrics_url, timeout=2).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def wait_for_metric(settings, worker, name: str, at_least: float, **labels) -> None:
    reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("escalations").name)  # any poll loop will do
    try:
        reader.read_until(lambda _m: metric(worker, name, **labels) >= at_least, timeout=60)
    finally:
        reader.close()


def person_on_another_partition() -> str:
    """A person id that librdkafka's default partitioner (CRC32) puts elsewhere than murmur2 does."""
    while True:
        person = new_person()
        if zlib.crc32(person.encode()) % 4 != person_partition(person, 4):
            return person


def test_an_unreachable_person_is_retried_then_escalated(platform):
    settings, worker = platform
    a = alert(person_on_another_partition(), Tier.low)
    produce(settings, "alerts", [a])
    [sms] = actions_of(settings, a.alert_id, Channel.sms, 1)
    [voice] = actions_of(settings, a.alert_id, Channel.ai_voice, 1)
    produce_outcomes(settings, [outcome(sms, Result.unreachable), outcome(voice, Result.unreachable)])
    [retry] = actions_of(settings, a.alert_id, Channel.ai_voice, 1, attempt=2)
    assert retry.action_id == voice.action_id  # the same action, tried again
    produce_outcomes(settings, [outcome(retry, Result.unreachable)])

    [escalation] = escalations_of(settings, a.alert_id)
    assert (escalation.reason, escalation.tier, escalation.to_tier) == (EscalationReason.unreachable, Tier.low, Tier.medium)
    [call] = actions_of(settings, a.alert_id, Channel.hotline_call, 1)
    [push] = actions_of(settings, a.alert_id, Channel.app_push, 1)
    assert call.reason == push.reason == "escalation:unreachable"
    assert sorted(escalation.action_ids) == sorted([call.action_id, push.action_id])
    assert metric(worker, "antifraud_escalate_forwarded_total") >= 3  # the outcomes found their alert all the same


def test_a_transfer_after_the_warning_goes_to_that_bank_only(platform):
    settings, _worker = platform
    a = alert(new_person(), Tier.medium, accounts=(("ICBC", "acct_own_0001"),))
    produce(settings, "alerts", [a])
    actions_of(settings, a.alert_id, Channel.hotline_call, 1)  # the alert is in place
    produce(settings, "signals_enriched", [transfer(a.person_id, bank="CCB", account="acct_ccb_0777")])

    [request] = read(settings, bank_topic_id("CCB"), BankRequest, lambda r: r.account == "acct_ccb_0777", 1)
    assert (request.bank, request.kind, request.reason_code.value) == ("CCB", RequestKind.apply, "transfer_during_alert")
    assert verify(msgspec.to_builtins(request), bank_key(settings, PARTNERS, "CCB"))
    text = ENCODE(request).decode()
    assert a.alert_id not in text and a.person_id not in text and "+86" not in text  # minimum scope
    [escalation] = escalations_of(settings, a.alert_id)
    assert escalation.reason is EscalationReason.new_transfer and escalation.bank_request_ids == [request.request_id]
    for code in PARTNERS.banks:  # no other bank hears of it
        if code != "CCB":
            reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic(bank_topic_id(code)).name)
            others = [msgspec.json.decode(m.value(), type=BankRequest) for m in reader.read_for(0.5)]
            reader.close()
            assert [r for r in others if r.account == "acct_ccb_0777" or r.bank != code] == []


def test_dissuaded_closes_the_alert_and_releases_the_bank_measures(platform):
    settings, worker = platform
    a = alert(new_person(), Tier.medium, accounts=(("ICBC", "acct_icbc_0042"),))
    produce(settings, "alerts", [a])
    [call] = actions_of(settings, a.alert_id, Channel.hotline_call, 1)
    produce(settings, "signals_enriched", [transfer(a.person_id, bank="ICBC", account="acct_icbc_0042")])
    read(settings, bank_topic_id("ICBC"), BankRequest, lambda r: r.account == "acct_icbc_0042", 1)
    wait_for_metric(settings, worker, "antifraud_bank_requests_total", 1, bank="ICBC", status="applied")  # the bank's ack

    produce_outcomes(settings, [outcome(call, Result.dissuaded)])
    requests = read(settings, bank_topic_id("ICBC"), BankRequest, lambda r: r.account == "acct_icbc_0042", 2)
    assert [r.kind for r in requests] == [RequestKind.apply, RequestKind.release]
    assert requests[1].reason_code.value == "dissuaded"
    wait_for_metric(settings, worker, "antifraud_bank_requests_total", 1, bank="ICBC", status="released")
    assert metric(worker, "antifraud_alerts_closed_total", result="dissuaded") >= 1
    assert metric(worker, "antifraud_alert_to_final_outcome_seconds_count") >= 1
    wait_for_metric(settings, worker, "antifraud_dissuasion_dissuaded_alerts", 1)
    assert metric(worker, "antifraud_dissuasion_closed_alerts") >= metric(worker, "antifraud_dissuasion_dissuaded_alerts")


def test_a_visit_not_confirmed_by_its_deadline_sends_a_supervisor(platform):
    settings, worker = platform
    a = alert(new_person(), Tier.high)
    produce(settings, "alerts", [a])
    [visit] = actions_of(settings, a.alert_id, Channel.police_visit, 1, reason="initial")
    [supervisor] = actions_of(settings, a.alert_id, Channel.police_visit, 1, reason="sla_breach")
    assert supervisor.priority == visit.priority - 1
    assert (supervisor.target.station, supervisor.target.grid) == (visit.target.station, visit.target.grid)
    [escalation] = escalations_of(settings, a.alert_id)
    assert (escalation.reason, escalation.trigger) == (EscalationReason.sla_breach, visit.action_id)
    assert escalation.action_ids == [supervisor.action_id]
    assert metric(worker, "antifraud_sla_breaches_total", tier="high") >= 1


class RefusingOfficers:
    """A police-visit gateway whose every visit is refused at the door, recording what it was sent."""

    name, concurrency = "refusing", 8

    def __init__(self):
        self.lock, self.sent = threading.Lock(), []

    def send(self, action, outcome_id):
        with self.lock:
            self.sent.append(action.action_id)
        time.sleep(0.3)  # at the door for a moment: the other alert's visit is read meanwhile
        return GatewayReply(Result.refused, "the person did not accept the warning")

    def worst_case_s(self) -> float:
        return 0.3

    def close(self) -> None:
        pass


def test_a_funds_warning_and_a_high_alert_of_one_person_get_one_visit_and_each_is_settled(platform):
    """The acceptance trials' case through route, the police-visit worker and escalate: one officer at
    the door for both alerts; the refusal there settles each alert by its own rules (the funds warning is
    at the top and closes, the high alert escalates to an emergency visit of its own, refused in turn)."""
    settings, _worker = platform
    officers = RefusingOfficers()
    channel = ChannelWorker(settings, Channel.police_visit, group_id=f"test-visits-{new_person()}", gateway=officers)
    running = threading.Thread(target=channel.run, daemon=True)
    running.start()
    try:
        warm_up = alert(new_person(), Tier.funds_warning)  # the channel reads the earlier tests' visits first
        produce(settings, "alerts", [warm_up])
        read(settings, "outcomes", Outcome, lambda o: o.alert_id == warm_up.alert_id, 1)

        person = new_person()
        funds = alert(person, Tier.funds_warning, alert_id=f"{person}-F-ev1")
        high = alert(person, Tier.high, alert_id=f"{person}-A1", at=funds.alert_at + timedelta(seconds=1))
        produce(settings, "alerts", [funds, high])
        [emergency] = actions_of(settings, funds.alert_id, Channel.police_visit, 1)
        [visit] = actions_of(settings, high.alert_id, Channel.police_visit, 1, reason="initial")
        [closed] = escalations_of(settings, funds.alert_id)
        assert closed.reason is EscalationReason.refused and "closed as refused" in closed.detail
        refusals = read(settings, "escalations", Escalation,
                        lambda e: e.alert_id == high.alert_id and e.reason is EscalationReason.refused, 2)
        assert [e.to_tier for e in refusals] == [Tier.funds_warning, None]  # escalated, then closed at the top
        [again] = actions_of(settings, high.alert_id, Channel.police_visit, 1, reason="escalation:refused")
        outcomes = read(settings, "outcomes", Outcome, lambda o: o.alert_id in (funds.alert_id, high.alert_id), 3)
    finally:
        channel.stop.set()
        running.join(30)
    with officers.lock:
        sent = set(officers.sent)
    assert len({emergency.action_id, visit.action_id} & sent) == 1  # one officer at the door for both alerts
    assert again.action_id in sent  # the escalation after the refusal is a visit of its own
    [carried] = [o for o in outcomes if o.detail.startswith("carried by the visit")]
    assert carried.action_id in (emergency.action_id, visit.action_id) and carried.result is Result.refused


def test_a_restarted_worker_finds_the_deadlines_in_the_state_it_recovers(escalate_worker):
    """The timer's index is built from the recovered table, not only from what the agent writes after a start."""
    own, env = escalate_worker
    settings = own.settings
    a = alert(new_person(), Tier.high, at=now() + timedelta(seconds=15))  # its visit is due after the restart
    produce(settings, "alerts", [a])
    [visit] = actions_of(settings, a.alert_id, Channel.police_visit, 1, reason="initial")
    changelog = next(t for t in CATALOG.of_kind("changelog") if t.table == "alert_state")
    stored = Reader(settings.kafka_bootstrap_servers, changelog.name)
    try:
        stored.read_until(lambda ms: any(m.key() and a.person_id in m.key().decode() for m in ms), timeout=60)
    finally:
        stored.close()

    own.platform.stop_child(own.worker)
    stopped_at = now()
    assert stopped_at < visit.deadline, "the worker took too long to stop: the test proves nothing"
    own.worker = own.platform.spawn("worker", "worker", **env)
    [supervisor] = actions_of(settings, a.alert_id, Channel.police_visit, 1, reason="sla_breach")
    assert supervisor.created_at > stopped_at  # found by the restarted worker
    [escalation] = escalations_of(settings, a.alert_id)
    assert (escalation.reason, escalation.trigger) == (EscalationReason.sla_breach, visit.action_id)
