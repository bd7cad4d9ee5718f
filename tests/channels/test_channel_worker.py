"""The channel worker on the real broker and Valkey, sending to a real local partner endpoint.

Workers run in threads here (their metrics are readable in the test); the tests about
processes dying are in test_channel_processes.py.
"""

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from channel_helpers import (
    PartnerServer,
    ThreadWorker,
    make_action,
    outcome_ids_cover,
    outcomes_of,
    produce_actions,
    wait_for,
    webhook_settings,
)
from prometheus_client import REGISTRY

from streams.contracts.actions import Channel, Result
from streams.contracts.alerts import Tier
from streams.contracts.internal import DeadLetter, DeadLetterReason


@pytest.fixture
def partner():
    server = PartnerServer().start()
    yield server
    server.stop()


@pytest.fixture
def outcomes(catalog, consumer_factory):
    return consumer_factory(catalog.topic("outcomes").name)


@pytest.fixture
def workers():
    started: list[ThreadWorker] = []

    def start(*args, **kwargs) -> ThreadWorker:
        worker = ThreadWorker(*args, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _held(channel: Channel, policy: str) -> float:
    return REGISTRY.get_sample_value("antifraud_channel_held_total", {"channel": channel.value, "policy": policy}) or 0


def test_every_action_gets_one_outcome_keyed_by_person(settings, partner, producer, topic_factory, outcomes,
                                                        workers):
    topic = topic_factory(partitions=2)
    actions = [make_action(Channel.sms) for _ in range(6)] + [make_action(Channel.sms, phone=None)]
    produce_actions(producer, topic, actions)
    workers(webhook_settings(settings, partner), Channel.sms, topic)
    ids = {a.action_id for a in actions}
    messages = outcomes.read_until(outcome_ids_cover(ids))
    by_action = {o.action_id: o for o in outcomes_of(messages, ids)}
    for action in actions[:6]:
        outcome = by_action[action.action_id]
        assert outcome.result is Result.delivered and outcome.outcome_id == f"{action.action_id}:1"
        assert (outcome.person_id, outcome.alert_id, outcome.channel) == (action.person_id, action.alert_id,
                                                                         Channel.sms)
    no_phone = by_action[actions[6].action_id]
    assert no_phone.result is Result.failed and "no phone" in no_phone.detail
    assert {m.key().decode() for m in messages if m.key().decode() in {a.person_id for a in actions}} == {
        a.person_id for a in actions}
    assert len(partner.calls_for(ids)) == 6


def test_a_replayed_topic_sends_nothing_again_and_repeats_the_same_outcomes(settings, partner, producer,
                                                                             topic_factory, outcomes, workers):
    topic = topic_factory(partitions=2)
    actions = [make_action(Channel.ai_voice) for _ in range(5)]
    ids = {a.action_id for a in actions}
    produce_actions(producer, topic, actions)
    workers(webhook_settings(settings, partner), Channel.ai_voice, topic)
    first = {o.outcome_id: o for o in outcomes_of(outcomes.read_until(outcome_ids_cover(ids)), ids)}
    assert len(partner.calls_for(ids)) == 5

    produce_actions(producer, topic, actions)  # the whole topic again, as a replay would
    messages = outcomes.read_until(lambda ms: len(outcomes_of(ms, ids)) >= 10)
    assert len(partner.calls_for(ids)) == 5, "a replay never contacts anyone again"
    for outcome in outcomes_of(messages, ids):
        assert outcome == first[outcome.outcome_id], "the replay repeats the stored outcome, byte for byte"


def test_unreadable_actions_become_dead_letters_and_the_worker_goes_on(settings, partner, producer, catalog,
                                                                        topic_factory, outcomes, consumer_factory,
                                                                        workers):
    topic = topic_factory(partitions=1)
    wrong_channel = make_action(Channel.hotline_call)
    for value in (b"not json at all", b'{"action_id": "x"}', b"\xff\xfe", msgspec.json.encode(wrong_channel)):
        producer.produce(topic, key=b"k", value=value)
    good = make_action(Channel.sms)
    produce_actions(producer, topic, [good])
    workers(webhook_settings(settings, partner), Channel.sms, topic)
    outcomes.read_until(outcome_ids_cover({good.action_id}))

    dead = consumer_factory(catalog.topic("dead_letter").name)

    def mine(ms) -> list[DeadLetter]:
        return [msgspec.json.decode(m.value(), type=DeadLetter) for m in ms
                if msgspec.json.decode(m.value(), type=DeadLetter).source_topic == topic]

    letters = mine(dead.read_until(lambda ms: len(mine(ms)) >= 4))
    assert [d.reason for d in letters] == [DeadLetterReason.not_json, DeadLetterReason.schema_violation,
                                           DeadLetterReason.not_utf8, DeadLetterReason.schema_violation]
    assert [d.source_offset for d in letters] == [0, 1, 2, 3]
    assert base64.b64decode(letters[0].original_b64) == b"not json at all"
    assert "hotline_call" in letters[3].detail and letters[3].stage == "channel-sms"
    assert partner.calls_for({wrong_channel.action_id}) == []


def test_quiet_hours_hold_low_tier_until_they_end_and_let_urgent_ones_through(settings, partner, producer,
                                                                               topic_factory, outcomes, workers):
    city = ZoneInfo("Asia/Shanghai")
    now = datetime.now(city)
    end = now + timedelta(seconds=7)  # longer than a group join (3 s on the embedded broker)
    window = f"{(now - timedelta(minutes=1)):%H:%M:%S}-{end:%H:%M:%S}"
    topic = topic_factory(partitions=1)
    low, urgent = make_action(Channel.sms, Tier.low), make_action(Channel.sms, Tier.funds_warning)
    held_before = _held(Channel.sms, "quiet_hours")
    produce_actions(producer, topic, [low, urgent])
    workers(webhook_settings(settings, partner, channel_quiet_hours=window), Channel.sms, topic)

    outcomes.read_until(outcome_ids_cover({urgent.action_id}))
    assert _held(Channel.sms, "quiet_hours") == held_before + 1
    messages = outcomes.read_until(outcome_ids_cover({low.action_id}))
    [released] = outcomes_of(messages, {low.action_id})
    assert released.result is Result.delivered
    assert released.started_at >= end.astimezone(UTC).replace(microsecond=0), "not before the quiet hours end"
    assert partner.calls_for({low.action_id})[0].at >= int(end.timestamp())


def test_the_frequency_cap_holds_a_further_contact_until_the_window_moves(settings, partner, producer,
                                                                          topic_factory, outcomes, workers):
    topic = topic_factory(partitions=1)
    person = f"p-cap-{topic[-6:]}"
    first, second = make_action(Channel.app_push, person_id=person), make_action(Channel.app_push, person_id=person)
    held_before = _held(Channel.app_push, "frequency_cap")
    produce_actions(producer, topic, [first, second])
    workers(webhook_settings(settings, partner, contact_frequency_cap=1, contact_frequency_window_s=3),
            Channel.app_push, topic)
    ids = {first.action_id, second.action_id}
    messages = outcomes.read_until(outcome_ids_cover(ids))
    by_id = {o.action_id: o for o in outcomes_of(messages, ids)}
    assert _held(Channel.app_push, "frequency_cap") == held_before + 1
    # started_at is the instant the policy counted the contact (what the cap measures from), kept to the µs.
    gap = by_id[second.action_id].started_at - by_id[first.action_id].started_at
    assert gap >= timedelta(seconds=3) - timedelta(microseconds=1), "the second contact waited for the window"
    assert len(partner.calls_for(ids)) == 2


def test_the_rate_limit_spaces_sends_and_loses_none(settings, partner, producer, topic_factory, outcomes,
                                                    workers, catalog):
    topic = topic_factory(partitions=2)
    actions = [make_action(Channel.hotline_call) for _ in range(6)]
    ids = {a.action_id for a in actions}
    held_before = _held(Channel.hotline_call, "rate_limit")
    produce_actions(producer, topic, actions)
    workers(webhook_settings(settings, partner, channel_rate_limits={"hotline_call": 2.0}), Channel.hotline_call,
            topic)
    messages = outcomes.read_until(outcome_ids_cover(ids))
    assert {o.result for o in outcomes_of(messages, ids)} == {Result.delivered}
    # How many wait depends on when each of the two workers gets its partition (one joining a second
    # later finds a token refilled), so the count only shows the limiter did the spacing checked below.
    assert _held(Channel.hotline_call, "rate_limit") > held_before, "a send waited for the limiter"
    times = sorted(c.at for c in partner.calls_for(ids))
    assert len(times) == 6
    # At 2 per second with a burst of 2, the k-th send (from 0) cannot start before (k - 1) * 0.5 s.
    for k in range(2, 6):
        assert times[k] - times[0] >= (k - 1) * 0.5 - 0.05


def test_a_partner_that_stays_down_gives_failed_outcomes_and_opens_the_circuit(settings, partner, producer,
                                                                                topic_factory, outcomes, workers):
    partner.down = True
    topic = topic_factory(partitions=1)
    actions = [make_action(Channel.police_visit) for _ in range(4)]
    ids = {a.action_id for a in actions}
    produce_actions(producer, topic, actions)
    workers(webhook_settings(settings, partner, gateway_retries=1, gateway_backoff_s=0.01,
                             gateway_circuit_fail_max=2, gateway_circuit_reset_s=60.0), Channel.police_visit, topic)
    messages = outcomes.read_until(outcome_ids_cover(ids))
    results = [o for o in outcomes_of(messages, ids)]
    assert {o.result for o in results} == {Result.failed}
    details = sorted(o.detail for o in results)
    assert sum("2 attempts" in d and "HTTP 503" in d for d in details) == 2
    assert sum("circuit open" in d for d in details) == 2
    assert len(partner.calls_for(ids)) == 4, "two sends of two calls each, then the circuit stops the traffic"
    assert REGISTRY.get_sample_value("antifraud_gateway_circuit_open", {"channel": "police_visit"}) == 1


def test_a_held_action_survives_the_worker_and_another_one_releases_it(settings, partner, producer, topic_factory,
                                                                       outcomes, workers):
    city = ZoneInfo("Asia/Shanghai")
    now = datetime.now(city)
    end = now + timedelta(seconds=8)
    window = f"{(now - timedelta(minutes=1)):%H:%M:%S}-{end:%H:%M:%S}"
    topic = topic_factory(partitions=1)
    action = make_action(Channel.ai_voice)
    produce_actions(producer, topic, [action])
    held = webhook_settings(settings, partner, channel_quiet_hours=window)
    first = workers(held, Channel.ai_voice, topic)
    wait_for(lambda: first.worker.held.contains(f"{action.action_id}:1"), 30, "the action is held")
    first.stop()
    # A worker in a new group reads the action again, finds it held, and carries it out when due.
    workers(held, Channel.ai_voice, topic)
    outcomes.read_until(outcome_ids_cover({action.action_id}))
    assert len(partner.calls_for({action.action_id})) == 1


def test_the_simulated_gateway_reports_its_seeded_results(settings, producer, topic_factory, outcomes, workers):
    from channels.gateways.simulated import simulate

    topic = topic_factory(partitions=2)
    actions = [make_action(channel) for channel in (Channel.police_visit,) * 4]
    ids = {a.action_id for a in actions}
    produce_actions(producer, topic, actions)
    simulated = settings.model_copy(update={"channel_gateway": "simulated", "gateway_simulated_time_scale": 0.0,
                                            "gateway_simulated_seed": 5, "channel_rate_limits": {}})
    workers(simulated, Channel.police_visit, topic)
    messages = outcomes.read_until(outcome_ids_cover(ids))
    for outcome in outcomes_of(messages, ids):
        action = next(a for a in actions if a.action_id == outcome.action_id)
        assert outcome.result is simulate(action, outcome.outcome_id, seed=5)[0].result


def test_a_gateway_that_takes_parallel_work_gets_that_many_sends_at_once(settings, producer, topic_factory, outcomes,
                                                                          workers):
    import threading

    from channels.gateways.simulated import SimulatedGateway, simulate

    class CountingOfficers(SimulatedGateway):
        """The simulated gateway, counting the visits in progress at the same moment."""

        def __init__(self):
            super().__init__(Channel.police_visit, seed=5, time_scale=0.1, concurrency=4)
            self.lock, self.now, self.most = threading.Lock(), 0, 0

        def send(self, action, outcome_id):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return super().send(action, outcome_id)
            finally:
                with self.lock:
                    self.now -= 1

    topic = topic_factory(partitions=1)
    actions = [make_action(Channel.police_visit) for _ in range(8)]
    ids = {a.action_id for a in actions}
    produce_actions(producer, topic, actions)
    officers = CountingOfficers()
    workers(settings.model_copy(update={"channel_rate_limits": {}}), Channel.police_visit, topic, gateway=officers)
    messages = outcomes.read_until(outcome_ids_cover(ids))
    got = outcomes_of(messages, ids)
    assert sorted(o.action_id for o in got) == sorted(ids), "one outcome per action"
    assert all(o.result is simulate(next(a for a in actions if a.action_id == o.action_id), o.outcome_id, 5)[0].result
               for o in got)
    assert officers.most == 4


@pytest.mark.parametrize("officers_at_once", [1, 4])
def test_a_persons_funds_warning_and_high_alert_get_one_visit_that_answers_for_both(
        settings, producer, topic_factory, outcomes, workers, officers_at_once):
    """The acceptance trials' case: a funds warning and a high alert of one person, moments apart.
    One at a time the second visit is read after the first ended; four at a time both are read while
    the first is under way: either way one officer goes, and each alert gets its own outcome."""
    import threading

    from channels.gateways.simulated import SimulatedGateway
    from streams.valkey import sync_client

    class Officers(SimulatedGateway):
        def __init__(self):
            super().__init__(Channel.police_visit, seed=5, time_scale=0.1, concurrency=officers_at_once)
            self.lock, self.sent = threading.Lock(), []

        def send(self, action, outcome_id):
            with self.lock:
                self.sent.append(action.action_id)
            return super().send(action, outcome_id)

    topic = topic_factory(partitions=1)
    person, other = f"p-both-{topic[-6:]}", f"p-else-{topic[-6:]}"
    emergency = make_action(Channel.police_visit, Tier.funds_warning, person_id=person)
    high = make_action(Channel.police_visit, Tier.high, person_id=person)
    elsewhere = make_action(Channel.police_visit, Tier.high, person_id=other)
    first = {emergency.action_id, high.action_id, elsewhere.action_id}
    produce_actions(producer, topic, [emergency, high, elsewhere])
    officers = Officers()
    carried_before = REGISTRY.get_sample_value("antifraud_channel_visits_carried_total") or 0
    workers(settings.model_copy(update={"channel_rate_limits": {}}), Channel.police_visit, topic, gateway=officers)
    got = {o.action_id: o for o in outcomes_of(outcomes.read_until(outcome_ids_cover(first)), first)}

    [went] = [a for a in (emergency, high) if a.action_id in officers.sent]  # one officer at the person's door
    [rode] = [a for a in (emergency, high) if a is not went]
    assert sorted(officers.sent) == sorted([went.action_id, elsewhere.action_id])
    assert (got[rode.action_id].alert_id, got[rode.action_id].result) == (rode.alert_id, got[went.action_id].result)
    assert got[rode.action_id].detail.startswith(f"carried by the visit for alert {went.alert_id}")
    assert REGISTRY.get_sample_value("antifraud_channel_visits_carried_total") == carried_before + 1
    client = sync_client(settings)
    assert client.zcard(f"contacts:{person}") == 1  # one visit, one contact in the frequency count
    client.close()

    # An alert raised after that visit ended is a new visit.
    later = make_action(Channel.police_visit, Tier.funds_warning, person_id=person)
    produce_actions(producer, topic, [later])
    outcomes.read_until(outcome_ids_cover({later.action_id}))
    assert later.action_id in officers.sent
