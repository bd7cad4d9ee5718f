"""Helpers for the channel tests: synthetic actions, a recording partner endpoint, workers.

The partner endpoint is a real HTTP server on 127.0.0.1 that checks every request's
HMAC signature like a partner would, and records what it was asked to send.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
from pydantic import SecretStr

from channels.gateways.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from channels.worker import ChannelWorker
from streams.contracts.actions import Action, Channel, Outcome, Target
from streams.contracts.alerts import Jurisdiction, Tier
from streams.contracts.common import Typology
from streams.settings import PROJECT_ROOT, Settings

SECRET = "test-secret-not-for-production"
PYTHON = str(Path(sys.executable))


def make_action(
    channel: Channel = Channel.sms,
    tier: Tier = Tier.low,
    person_id: str | None = None,
    typology: Typology = Typology.investment,
    attempt: int = 1,
    phone: str | None = "+8613800000001",  # synthetic: the 138-0000 range is not assigned to anyone here
) -> Action:
    now = datetime.now(UTC)
    alert_id = f"al-{uuid.uuid4().hex[:12]}"
    return Action(
        action_id=f"{alert_id}:1:{channel.value}:initial",
        alert_id=alert_id,
        alert_version=1,
        person_id=person_id or f"p-{uuid.uuid4().hex[:12]}",
        channel=channel,
        tier=tier,
        typology=typology,
        target=Target(phone=phone if channel is not Channel.police_visit else None,
                      station="chuanhui-xiaoyao" if channel is Channel.police_visit else None),
        jurisdiction=Jurisdiction(county="chuanhui", station="chuanhui-xiaoyao", grid="g-07"),
        priority=5,
        deadline=now + timedelta(minutes=30),
        script_key=f"script.{typology.value}",
        reason="initial",
        attempt=attempt,
        created_at=now,
    )


def encode(action: Action) -> bytes:
    return msgspec.json.encode(action)


def produce_actions(producer, topic: str, actions: list[Action]) -> None:
    for action in actions:
        producer.produce(topic, key=action.person_id.encode(), value=encode(action))
    assert producer.flush(10) == 0


def outcomes_of(messages, action_ids: set[str]) -> list[Outcome]:
    decoded = (msgspec.json.decode(m.value(), type=Outcome) for m in messages)
    return [o for o in decoded if o.action_id in action_ids]


def outcome_ids_cover(action_ids: set[str]):
    """read_until predicate: every action has at least one outcome."""
    return lambda messages: {o.action_id for o in outcomes_of(messages, action_ids)} >= action_ids


# ------------------------------------------------------------------------ the partner endpoint
@dataclass
class Call:
    action_id: str
    idempotency_key: str
    at: float
    signed: bool
    body: dict


@dataclass
class PartnerServer:
    """Answers like a channel partner; `down` answers 503; `hold_call` keeps that call's answer back."""

    secret: bytes = SECRET.encode()
    result: str = "delivered"
    detail: str = "delivered to the handset"
    down: bool = False
    delay_s: float = 0.0
    hold_call: int | None = None  # 1-based number of the call whose answer waits for `release`
    calls: list[Call] = field(default_factory=list)
    rejected: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    held_call_arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PartnerServer:
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signed = verify(partner.secret, self.headers.get(TIMESTAMP_HEADER, ""), body,
                                self.headers.get(SIGNATURE_HEADER, ""))
                if not signed:
                    with partner.lock:
                        partner.rejected += 1
                    return self._answer(401, {"error": "bad signature"})
                if partner.down:
                    with partner.lock:
                        partner.calls.append(self._call(body, signed))
                    return self._answer(503, {"error": "down"})
                with partner.lock:
                    partner.calls.append(self._call(body, signed))
                    number = len(partner.calls)
                if number == partner.hold_call:
                    partner.held_call_arrived.set()
                    partner.release.wait(60)
                time.sleep(partner.delay_s)
                self._answer(200, {"result": partner.result, "detail": partner.detail})

            def _call(self, body: bytes, signed: bool) -> Call:
                parsed = json.loads(body)
                return Call(parsed["action_id"], self.headers.get(IDEMPOTENCY_HEADER, ""), time.time(), signed,
                            parsed)

            def _answer(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker was killed mid-call: that is the point of some tests

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{{channel}}"

    def calls_for(self, action_ids: set[str]) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.action_id in action_ids]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------ workers
def webhook_settings(settings: Settings, partner: PartnerServer, **overrides) -> Settings:
    update = {
        "channel_gateway": "webhook",
        "channel_webhook_url": partner.url,
        "channel_webhook_secret": SecretStr(partner.secret.decode()),
        "gateway_retries": 0,
        "gateway_timeout_s": 5.0,
        "channel_quiet_hours": "",
        "contact_frequency_cap": 0,
        "channel_rate_limits": {},
        "channel_poll_s": 0.2,
    }
    update.update(overrides)
    return settings.model_copy(update=update)


class ThreadWorker:
    """A ChannelWorker in a thread of the test process (its metrics are readable here)."""

    def __init__(self, settings: Settings, channel: Channel, topic: str, **kwargs):
        self.worker = ChannelWorker(settings, channel, topic=topic, group_id=f"test-{uuid.uuid4().hex[:8]}",
                                    **kwargs)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.worker.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error:
            raise self.error


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTIFRAUD_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        REDIS_URL=settings.redis_url,
        ANTIFRAUD_RUN_DIR=str(settings.run_dir),
        ANTIFRAUD_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def start_worker_process(env: dict[str, str], channel: Channel, topic: str, group: str, log_path: Path):
    log = open(log_path, "ab")
    return subprocess.Popen(
        [PYTHON, "-m", "channels.worker", "--channel", channel.value, "--topic", topic, "--group", group],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout:.0f} s")
        time.sleep(0.05)
