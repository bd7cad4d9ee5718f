"""Channel workers as real processes: killed mid-send, stopped gracefully, sharing the load.

What is counted is what a citizen would feel: calls at the partner endpoint, per action
id, and the outcomes per action id on the outcomes topic.
"""

import os
import signal
import subprocess
import uuid
from collections import defaultdict

import pytest
from channel_helpers import (
    PartnerServer,
    make_action,
    outcome_ids_cover,
    outcomes_of,
    produce_actions,
    start_worker_process,
    wait_for,
    worker_env,
)

from streams.contracts.actions import Channel, Result

pytestmark = pytest.mark.slow


@pytest.fixture
def partner():
    server = PartnerServer(delay_s=0.05).start()
    yield server
    server.stop()


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _env(settings, partner, **extra):
    return worker_env(
        settings,
        ANTIFRAUD_CHANNEL_GATEWAY="webhook",
        ANTIFRAUD_CHANNEL_WEBHOOK_URL=partner.url,
        ANTIFRAUD_CHANNEL_WEBHOOK_SECRET=partner.secret.decode(),
        ANTIFRAUD_GATEWAY_RETRIES="0",
        ANTIFRAUD_CHANNEL_QUIET_HOURS="",
        ANTIFRAUD_CONTACT_FREQUENCY_CAP="0",
        ANTIFRAUD_CHANNEL_RATE_LIMITS="{}",
        ANTIFRAUD_CHANNEL_POLL_S="0.2",
        **extra,
    )


def _by_outcome_id(outcomes) -> dict[str, set[bytes]]:
    import msgspec

    seen: dict[str, set[bytes]] = defaultdict(set)
    for outcome in outcomes:
        seen[outcome.outcome_id].add(msgspec.json.encode(outcome))
    return seen


def test_a_worker_killed_mid_send_neither_loses_nor_repeats_a_contact(settings, partner, producer, catalog,
                                                                       topic_factory, consumer_factory, processes,
                                                                       tmp_path):
    topic, group = topic_factory(partitions=2), f"test-{uuid.uuid4().hex[:8]}"
    actions = [make_action(Channel.sms) for _ in range(12)]
    ids = {a.action_id for a in actions}
    produce_actions(producer, topic, actions)
    partner.hold_call = 5  # the fifth send is answered only after the worker is dead
    env = _env(settings, partner, ANTIFRAUD_CHANNEL_SEND_LEASE_S="3")

    first = start_worker_process(env, Channel.sms, topic, group, tmp_path / "first.log")
    processes.append(first)
    assert partner.held_call_arrived.wait(60), (tmp_path / "first.log").read_text()
    os.kill(first.pid, signal.SIGKILL)  # mid-batch and mid-send
    first.wait(10)
    partner.release.set()

    second = start_worker_process(env, Channel.sms, topic, group, tmp_path / "second.log")
    processes.append(second)
    outcomes = consumer_factory(catalog.topic("outcomes").name)
    messages = outcomes.read_until(outcome_ids_cover(ids), timeout=90)

    calls = defaultdict(int)
    for call in partner.calls_for(ids):
        calls[call.action_id] += 1
    assert max(calls.values()) == 1, "nobody was contacted twice"
    versions = _by_outcome_id(outcomes_of(messages, ids))
    assert set(versions) == {f"{a.action_id}:1" for a in actions}, "every action has its outcome"
    assert all(len(v) == 1 for v in versions.values()), "a repeated outcome is the same outcome, byte for byte"
    final = {o.action_id: o for o in outcomes_of(messages, ids)}
    interrupted = [a for a, o in final.items() if o.result is Result.failed]
    assert len(interrupted) == 1 and "interrupted" in final[interrupted[0]].detail
    assert calls[interrupted[0]] == 1, "the interrupted send did reach the partner once, and was not repeated"
    assert all(calls[a] == 1 for a in ids), "every other action was sent exactly once"


def test_sigterm_finishes_the_current_send_commits_and_exits_cleanly(settings, partner, producer, catalog,
                                                                     topic_factory, consumer_factory, processes,
                                                                     tmp_path):
    topic, group = topic_factory(partitions=1), f"test-{uuid.uuid4().hex[:8]}"
    actions = [make_action(Channel.app_push) for _ in range(10)]
    ids = {a.action_id for a in actions}
    produce_actions(producer, topic, actions)
    partner.delay_s = 0.3
    env = _env(settings, partner)

    first = start_worker_process(env, Channel.app_push, topic, group, tmp_path / "first.log")
    processes.append(first)
    wait_for(lambda: len(partner.calls_for(ids)) >= 3, 60, "three sends")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, (tmp_path / "first.log").read_text()
    sent_before_stop = len(partner.calls_for(ids))
    assert sent_before_stop < len(actions), "stopped before the end of the batch"

    outcomes = consumer_factory(catalog.topic("outcomes").name)
    second = start_worker_process(env, Channel.app_push, topic, group, tmp_path / "second.log")
    processes.append(second)
    messages = outcomes.read_until(outcome_ids_cover(ids), timeout=90)
    assert sorted(c.action_id for c in partner.calls_for(ids)) == sorted(ids), "each sent once"
    results = {o.action_id: o.result for o in outcomes_of(messages, ids)}
    assert set(results.values()) == {Result.delivered}, "a graceful stop interrupts no send"
    repeated = len(outcomes_of(messages, ids)) - len(ids)
    assert repeated == 0, "the first worker committed what it finished, so nothing was read again"


def test_two_workers_share_a_channel_without_double_sends(settings, partner, producer, catalog, topic_factory,
                                                          consumer_factory, processes, tmp_path):
    topic, group = topic_factory(partitions=4), f"test-{uuid.uuid4().hex[:8]}"
    actions = [make_action(Channel.ai_voice) for _ in range(24)]
    ids = {a.action_id for a in actions}
    env = _env(settings, partner)
    for name in ("a", "b"):
        processes.append(start_worker_process(env, Channel.ai_voice, topic, group, tmp_path / f"{name}.log"))
    produce_actions(producer, topic, actions)
    outcomes = consumer_factory(catalog.topic("outcomes").name)
    outcomes.read_until(outcome_ids_cover(ids), timeout=90)
    assert sorted(c.action_id for c in partner.calls_for(ids)) == sorted(ids)
