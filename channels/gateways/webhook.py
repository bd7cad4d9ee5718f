"""The real integrations: one signed JSON POST per action to the channel partner.

Request: POST <channel_webhook_url with {channel}>, body = WebhookRequest (JSON), headers
  X-Antifraud-Timestamp: unix seconds
  X-Antifraud-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, key = channel_webhook_secret>
  Idempotency-Key: the outcome id (action id and attempt)
Reply: 2xx with GatewayReply JSON ({"result": "delivered", "detail": "..."}).

Retries (transport errors, timeouts, 429, 5xx) may repeat a request that the partner did
receive, so partners must treat a repeated Idempotency-Key as the same send; that is
what keeps retries from contacting a citizen twice. Other 4xx are final: the partner
refused this request, retrying will not change it, and it does not count against the
circuit. After gateway_circuit_fail_max sends in a row fail, the circuit opens and
sends fail at once (no traffic to a partner that is down) until a trial send succeeds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

import httpx
import msgspec
import pybreaker
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from channels.gateways.base import GatewayReply, scrub
from channels.metrics import CIRCUIT_OPEN, GATEWAY_CALLS
from streams.contracts.actions import Action, Channel, Result, Target
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import Typology
from streams.settings import Settings

SIGNATURE_HEADER = "X-Antifraud-Signature"
TIMESTAMP_HEADER = "X-Antifraud-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What a partner gets: only what it needs to act (no person id, no alert evidence)."""

    idempotency_key: str
    action_id: str
    attempt: int
    channel: Channel
    tier: Tier
    typology: Typology
    priority: int
    deadline: datetime
    script_key: str
    target: Target
    jurisdiction: Jurisdiction | None = None  # police visits only: which station goes


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """For partners (and tests): constant-time check of a request's signature."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_request(action: Action, outcome_id: str) -> WebhookRequest:
    return WebhookRequest(
        idempotency_key=outcome_id,
        action_id=action.action_id,
        attempt=action.attempt,
        channel=action.channel,
        tier=action.tier,
        typology=action.typology,
        priority=action.priority,
        deadline=action.deadline,
        script_key=action.script_key,
        target=action.target,
        jurisdiction=action.jurisdiction if action.channel is Channel.police_visit else None,
    )


class _Retryable(Exception):
    """A call that may succeed if repeated: the partner did not (clearly) take it."""


class _CircuitGauge(pybreaker.CircuitBreakerListener):
    def __init__(self, channel: str):
        self.channel = channel

    def state_change(self, cb, old_state, new_state) -> None:
        CIRCUIT_OPEN.labels(self.channel).set(1 if new_state.name == pybreaker.STATE_OPEN else 0)


_encode = msgspec.json.Encoder().encode
_decode_reply = msgspec.json.Decoder(GatewayReply).decode


class WebhookGateway:
    name = "webhook"
    concurrency = 1  # one send at a time: the circuit breaker and retries keep per-send state

    def __init__(self, settings: Settings, channel: Channel, client: httpx.Client | None = None):
        if not settings.channel_webhook_url or settings.channel_webhook_secret is None:
            raise ValueError("the webhook gateway needs ANTIFRAUD_CHANNEL_WEBHOOK_URL and _SECRET")
        self.channel = channel
        self.url = settings.channel_webhook_url.replace("{channel}", channel.value)
        self.secret = settings.channel_webhook_secret.get_secret_value().encode()
        self.settings = settings
        self.client = client or httpx.Client(timeout=settings.gateway_timeout_s)
        CIRCUIT_OPEN.labels(channel.value).set(0)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=settings.gateway_circuit_fail_max,
            reset_timeout=settings.gateway_circuit_reset_s,
            listeners=[_CircuitGauge(channel.value)],
            name=f"gateway-{channel.value}",
            throw_new_error_on_trip=False,  # the send that trips it reports its own error
        )

    def send(self, action: Action, outcome_id: str) -> GatewayReply:
        body = _encode(webhook_request(action, outcome_id))
        attempts = self.settings.gateway_retries + 1
        try:
            return self.breaker.call(self._post_with_retries, body, outcome_id)
        except pybreaker.CircuitBreakerError:
            self._count("circuit_open")
            return GatewayReply(Result.failed, f"{self.channel.value} gateway circuit open after repeated failures: "
                                          "not sent")
        except _Retryable as exc:
            return GatewayReply(Result.failed, f"{self.channel.value} gateway failed {attempts} attempts (last: {exc})")

    def worst_case_s(self) -> float:
        s = self.settings
        backoffs = sum(min(s.gateway_backoff_s * 2**n + s.gateway_backoff_s, s.gateway_backoff_max_s)
                       for n in range(s.gateway_retries))
        return (s.gateway_retries + 1) * s.gateway_timeout_s + backoffs

    def close(self) -> None:
        self.client.close()

    def _post_with_retries(self, body: bytes, outcome_id: str) -> GatewayReply:
        s = self.settings
        for attempt in Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(s.gateway_retries + 1),
            wait=wait_exponential_jitter(initial=s.gateway_backoff_s, max=s.gateway_backoff_max_s,
                                         jitter=s.gateway_backoff_s),
            reraise=True,
        ):
            with attempt:
                return self._post_once(body, outcome_id)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _post_once(self, body: bytes, outcome_id: str) -> GatewayReply:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            IDEMPOTENCY_HEADER: outcome_id,
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            self._count("timeout")
            raise _Retryable("timeout") from None
        except httpx.TransportError as exc:
            self._count("unreachable")
            raise _Retryable(type(exc).__name__) from None
        code = response.status_code
        if code == 429 or code >= 500:
            self._count("http_429" if code == 429 else "http_5xx")
            raise _Retryable(f"HTTP {code}")
        if code >= 300:
            self._count("rejected")
            return GatewayReply(Result.failed, f"rejected by the {self.channel.value} gateway: HTTP {code}")
        try:
            reply = _decode_reply(response.content)
        except msgspec.MsgspecError:
            self._count("bad_reply")
            return GatewayReply(Result.failed, f"unreadable reply from the {self.channel.value} gateway")
        self._count("ok")
        return GatewayReply(reply.result, scrub(reply.detail))

    def _count(self, status: str) -> None:
        GATEWAY_CALLS.labels(self.channel.value, self.name, status).inc()
