"""Rules in shadow on a running worker: the candidate's alerts go to alerts.shadow only, and stop with it.

A real `antifraud worker` on its own broker and Valkey; the shadow set and stopped with the
real `antifraud rules shadow` command; the alerts and every action topic read back.
"""

from __future__ import annotations

import itertools
import time

import httpx
import msgspec
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from rules_version_builders import ROUTING_WITH_LOW_PUSH, rules_text
from test_rules_live import antifraud, send_listed_call

from streams.catalog import get_catalog
from streams.contracts import Alert, Channel
from streams.contracts.actions import Action
from streams.kafka import producer_config
from streams.rules import get_rules
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()
SHIPPED = get_rules().version
CANDIDATE = "2027.08-1"
PERSONS = itertools.count(1)
ACTION_TOPICS = [CATALOG.topic(f"actions_{ch.value}").name for ch in Channel]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    own = worker_on_own_servers(tmp_path_factory.mktemp("rules-shadow"))
    yield own
    own.stop()


class Traffic:
    def __init__(self, settings):
        self.producer = Producer(producer_config(settings))
        self.alerts = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("alerts").name)
        self.shadow = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("alerts_shadow").name)

    def person(self) -> str:
        return send_listed_call(self.producer, f"P-SHADOW-{next(PERSONS)}")

    def read(self, reader: Reader, seconds: float) -> list[Alert]:
        return [msgspec.json.decode(m.value(), type=Alert) for m in reader.read_for(seconds)]

    def until(self, reader: Reader, found, timeout: float) -> list[Alert]:
        """New persons, one every half second, until found(alerts read) holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.person()
            alerts = self.read(reader, 0.5)
            if found(alerts):
                return alerts
        raise AssertionError(f"{reader.topic}: not found in {timeout:.0f} s")


def in_shadow_gauge(worker, version: str) -> float:
    text = httpx.get(worker.metrics_url, timeout=2).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "antifraud_rules_version_in_shadow" and s.labels.get("version") == version)


def test_a_candidate_in_shadow_writes_alerts_shadow_only_and_stops_with_the_shadow(live, tmp_path):
    settings, worker = live.settings, live.worker
    pid = worker.process.pid
    traffic = Traffic(settings)
    traffic.until(traffic.alerts, lambda alerts: any(a.rules_version == SHIPPED for a in alerts), timeout=90)
    assert traffic.read(traffic.shadow, 0.5) == []  # nothing in shadow: nothing there

    candidate = tmp_path / "rules.candidate.yaml"
    candidate.write_text(rules_text(CANDIDATE), encoding="utf-8")
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING_WITH_LOW_PUSH, encoding="utf-8")  # it would push: it must not
    done = antifraud(settings, "rules", "shadow", str(candidate), "--routing", str(routing),
                     "--by", "analyst-7", "--why", "try a push at low")
    assert done.returncode == 0, done.stderr
    assert f"{CANDIDATE} in shadow" in done.stdout
    shadow = traffic.until(traffic.shadow, lambda alerts: bool(alerts), timeout=20)

    # Persons sent from now on: each judged by both, live by the version in force, the shadow by the candidate.
    first = int(traffic.person().removeprefix("P-SHADOW-"))
    for _ in range(4):
        traffic.person()
    later = {f"P-SHADOW-{n}" for n in range(first, first + 5)}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live_alerts, shadow = traffic.read(traffic.alerts, 0.3), traffic.read(traffic.shadow, 0.3)
        if later <= {a.person_id for a in shadow} and later <= {a.person_id for a in live_alerts}:
            break
    mine = sorted((a for a in live_alerts if a.person_id in later), key=lambda a: a.person_id)
    theirs = sorted((a for a in shadow if a.person_id in later), key=lambda a: a.person_id)
    assert {a.rules_version for a in mine} == {SHIPPED} and {a.rules_version for a in theirs} == {CANDIDATE}
    # The same rules under another id: the same judgement, each from its own state.
    assert [(a.alert_id, a.version, a.tier) for a in mine] == [(a.alert_id, a.version, a.tier) for a in theirs]
    assert all(a.rules_version != CANDIDATE for a in live_alerts)
    actions = [msgspec.json.decode(m.value(), type=Action) for topic in ACTION_TOPICS
               for m in Reader(settings.kafka_bootstrap_servers, topic).read_for(0.5)]
    assert actions and all(a.rules_version != CANDIDATE for a in actions)
    assert not [a for a in actions if a.channel is Channel.app_push]  # the candidate's routing never acted

    stopped = antifraud(settings, "rules", "shadow", "--stop", "--by", "lead-2", "--why", "seen enough")
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 15
    while in_shadow_gauge(worker, CANDIDATE) != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert in_shadow_gauge(worker, CANDIDATE) == 0
    before = len(traffic.read(traffic.shadow, 1.0))
    after_stop = {traffic.person() for _ in range(3)}
    traffic.alerts.read_until(lambda ms: after_stop <= {msgspec.json.decode(m.value(), type=Alert).person_id
                                                         for m in ms}, timeout=30)
    assert len(traffic.read(traffic.shadow, 2.0)) == before  # live alerts for them, no shadow ones
    assert (worker.process.pid, worker.process.poll(), worker.restarts) == (pid, None, 0)


def test_a_malformed_candidate_is_refused_and_nothing_is_set(live, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(rules_text("2027.08-9").replace("  high: 90", "  high: 50", 1), encoding="utf-8")
    refused = antifraud(live.settings, "rules", "shadow", str(bad), "--by", "analyst-7", "--why", "oops")
    assert refused.returncode == 1 and "tier cut-offs must rise" in refused.stderr
    both = antifraud(live.settings, "rules", "shadow", str(bad), "--stop", "--by", "analyst-7", "--why", "oops")
    assert both.returncode == 1 and "either a candidate rules file or --stop" in both.stderr


def test_the_ledger_keeps_the_shadow_apart_and_the_console_compares(live, tmp_path):
    """After the test above: the shadow's alerts in shadow_alerts only, its setting and stop, the comparison."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from oversight import schema
    from oversight.console import create_app
    from oversight.db import migrate
    from oversight.ledger import LedgerSink

    settings = live.settings
    on_topic = [msgspec.json.decode(m.value(), type=Alert)
                for m in Reader(settings.kafka_bootstrap_servers, CATALOG.topic("alerts_shadow").name).read_for(1.0)]
    assert on_topic and {a.rules_version for a in on_topic} == {CANDIDATE}
    engine = migrate(settings, f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    sink = LedgerSink(settings, engine, group_id="test-shadow-ledger")
    sa, deadline, kept = schema.shadow_alerts, time.monotonic() + 60, set()
    try:
        while len(kept) < len(on_topic) and time.monotonic() < deadline:
            sink.step()
            with engine.connect() as conn:
                kept = set(conn.execute(select(sa.c.alert_id, sa.c.version, sa.c.rules_version)).all())
        for _ in range(5):  # and whatever else is on the other topics by now
            sink.step()
    finally:
        sink.close()
    assert kept == {(a.alert_id, a.version, a.rules_version) for a in on_topic}
    with engine.connect() as conn:
        assert conn.execute(select(schema.alerts.c.alert_id).where(schema.alerts.c.rules_version == CANDIDATE)).all() == []
        assert [tuple(r) for r in conn.execute(select(schema.rules_shadows.c.version, schema.rules_shadows.c.set_by)
                                               .order_by(schema.rules_shadows.c.set_at))] == [
            (CANDIDATE, "analyst-7"), (None, "lead-2")]
    with TestClient(create_app(settings.model_copy(update={"console_tokens": {"tok": "centre"}}), engine)) as client:
        body = client.get("/api/rules/shadow", params={"minutes": 60}, headers={"Authorization": "Bearer tok"}).json()
    engine.dispose()
    assert (body["running"], body["candidate"], body["shadow"]["alerts"]) == (False, CANDIDATE, len(on_topic))
    assert body["live"]["alerts"] >= 5 and body["shadow"]["contacts"].get("sms", 0) > 0
