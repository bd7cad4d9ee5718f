"""Gateways: the webhook against a real local partner endpoint, and the seeded simulator."""

import json
import time
from collections import Counter

import httpx
import pytest
from channel_helpers import PartnerServer, make_action, webhook_settings
from prometheus_client import REGISTRY
from pydantic import SecretStr

from channels.gateways import SimulatedGateway, WebhookGateway, make_gateway
from channels.gateways.simulated import simulate
from channels.gateways.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from streams.contracts.actions import Channel, Result
from streams.contracts.alerts import Tier
from streams.contracts.common import Typology


@pytest.fixture
def partner():
    server = PartnerServer().start()
    yield server
    server.stop()


def _circuit(channel: Channel) -> float:
    return REGISTRY.get_sample_value("antifraud_gateway_circuit_open", {"channel": channel.value})


def _calls(channel: Channel, status: str) -> float:
    return REGISTRY.get_sample_value(
        "antifraud_gateway_calls_total", {"channel": channel.value, "gateway": "webhook", "status": status}) or 0.0


def test_a_signed_send_reaches_the_partner_with_only_what_it_needs(settings, partner):
    gateway = WebhookGateway(webhook_settings(settings, partner), Channel.sms)
    action = make_action(Channel.sms)
    reply = gateway.send(action, f"{action.action_id}:1")
    assert reply.result is Result.delivered
    [call] = partner.calls
    assert call.signed and call.idempotency_key == f"{action.action_id}:1"
    assert call.body["target"]["phone"] == action.target.phone
    assert "person_id" not in call.body and "alert_id" not in call.body  # least privilege
    assert call.body["jurisdiction"] is None  # only a police visit needs to know the station


def test_the_partner_rejects_a_tampered_body_which_proves_the_signature_is_checked(settings, partner):
    body = json.dumps({"action_id": "a-1"}).encode()
    timestamp = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(partner.secret, timestamp, body),
               IDEMPOTENCY_HEADER: "a-1:1", "Content-Type": "application/json"}
    url = partner.url.replace("{channel}", "sms")
    tampered = body.replace(b"a-1", b"a-2")
    assert httpx.post(url, content=tampered, headers=headers).status_code == 401
    moved_clock = {**headers, TIMESTAMP_HEADER: str(int(timestamp) + 1)}  # the timestamp is signed too
    assert httpx.post(url, content=body, headers=moved_clock).status_code == 401
    assert httpx.post(url, content=body, headers=headers).status_code == 200, "the untouched request passes"
    assert partner.rejected == 2 and len(partner.calls) == 1


def test_a_wrong_secret_is_a_failed_outcome_not_a_retry(settings, partner):
    wrong = webhook_settings(settings, partner, gateway_retries=3,
                             channel_webhook_secret=SecretStr("not-the-partners-key"))
    gateway = WebhookGateway(wrong, Channel.sms)
    reply = gateway.send(make_action(Channel.sms), "x:1")
    assert reply.result is Result.failed and "HTTP 401" in reply.detail
    assert partner.rejected == 1, "a refusal is final: not retried"


def test_a_down_partner_is_retried_then_failed_and_the_circuit_opens(settings, partner):
    partner.down = True
    channel = Channel.ai_voice
    gateway = WebhookGateway(webhook_settings(
        settings, partner, gateway_retries=2, gateway_backoff_s=0.01, gateway_backoff_max_s=0.02,
        gateway_circuit_fail_max=2, gateway_circuit_reset_s=60.0), channel)
    before = _calls(channel, "circuit_open")
    first = gateway.send(make_action(channel), "a:1")
    assert first.result is Result.failed and "3 attempts" in first.detail and "HTTP 503" in first.detail
    assert len(partner.calls) == 3, "one call and two retries"
    assert _circuit(channel) == 0
    gateway.send(make_action(channel), "b:1")
    assert len(partner.calls) == 6
    assert _circuit(channel) == 1, "two failed sends in a row open the circuit"
    third = gateway.send(make_action(channel), "c:1")
    assert third.result is Result.failed and "circuit open" in third.detail
    assert len(partner.calls) == 6, "an open circuit sends nothing"
    assert _calls(channel, "circuit_open") == before + 1


def test_the_circuit_closes_when_a_trial_send_succeeds(settings, partner):
    partner.down = True
    channel = Channel.app_push
    gateway = WebhookGateway(webhook_settings(settings, partner, gateway_circuit_fail_max=1,
                                              gateway_circuit_reset_s=0.2), channel)
    assert gateway.send(make_action(channel), "a:1").result is Result.failed
    assert _circuit(channel) == 1
    partner.down = False
    time.sleep(0.3)  # the reset timeout, so that the next send is the trial
    assert gateway.send(make_action(channel), "b:1").result is Result.delivered
    assert _circuit(channel) == 0


def test_nothing_listening_is_a_failed_outcome_with_the_reason(settings):
    dead = PartnerServer().start()
    dead.stop()  # the port is now closed
    gateway = WebhookGateway(webhook_settings(settings, dead, gateway_backoff_s=0.01), Channel.sms)
    reply = gateway.send(make_action(Channel.sms), "a:1")
    assert reply.result is Result.failed and "ConnectError" in reply.detail


def test_partner_words_never_carry_a_phone_number(settings, partner):
    partner.detail = "delivered to +86 138 0000 0001 at 12:00"
    reply = WebhookGateway(webhook_settings(settings, partner), Channel.sms).send(make_action(Channel.sms), "a:1")
    assert "0001" not in reply.detail and "<number>" in reply.detail


def test_the_webhook_gateway_needs_its_url_and_secret(settings):
    with pytest.raises(ValueError):
        make_gateway(settings.model_copy(update={"channel_gateway": "webhook"}), Channel.sms)
    assert isinstance(make_gateway(settings, Channel.sms), SimulatedGateway)


# ------------------------------------------------------------------------------ the simulator
def test_the_simulator_is_reproducible_per_action():
    action = make_action(Channel.ai_voice)
    assert simulate(action, "x:1", seed=3) == simulate(action, "x:1", seed=3)
    gateway = SimulatedGateway(Channel.ai_voice, seed=3, time_scale=0)
    assert gateway.send(action, "x:1") == simulate(action, "x:1", seed=3)[0]


def _results(channel: Channel, typology: Typology = Typology.investment, n: int = 600) -> Counter:
    # Fixed person ids: the simulated age band follows the person, so the counts are the same every run.
    actions = (make_action(channel, Tier.high, person_id=f"p{i}", typology=typology) for i in range(n))
    return Counter(simulate(action, f"a{i}:1", seed=1)[0].result for i, action in enumerate(actions))


def test_police_visits_mostly_reach_the_person_and_usually_dissuade():
    results = _results(Channel.police_visit)
    assert results[Result.unreachable] < 0.15 * 600
    assert results[Result.dissuaded] > results[Result.refused]


def test_sms_and_pushes_can_only_be_delivered_or_not():
    for channel in (Channel.sms, Channel.app_push):
        assert set(_results(channel)) <= {Result.delivered, Result.unreachable, Result.failed}


def test_romance_victims_are_harder_to_dissuade_than_police_impersonation_victims():
    romance = _results(Channel.hotline_call, Typology.romance, 1500)[Result.dissuaded]
    police = _results(Channel.hotline_call, Typology.impersonate_police, 1500)[Result.dissuaded]
    assert romance < police
