"""Rules versions live: a running worker switches at a batch boundary, without a restart.

The unit part shows that correlate judges a whole micro-batch by the version it took when
the batch began, even when a new one arrives halfway. The integration part runs a real
`antifraud worker` on its own broker and Valkey, publishes with the real `antifraud rules`
command, and reads the alerts and actions that follow.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import msgspec
import pytest
from confluent_kafka import Producer
from rules_version_builders import ROUTING_WITH_LOW_PUSH, ROUTING_WITHOUT_EMERGENCY_VISIT, rules_text, version

from signal_builders import call
from streams import rules_versions
from streams.catalog import get_catalog
from streams.contracts import Alert, Channel
from streams.contracts.actions import Action
from streams.contracts.common import Typology
from streams.kafka import producer_config
from streams.rules import get_rules
from streams.rules_versions import RulesInForce, read_versions, shipped_rule_set
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()
SHIPPED = get_rules().version
LOW_CHANNELS = (Channel.sms, Channel.ai_voice, Channel.app_push)
PERSONS = itertools.count(1)  # a new person for every signal of every test: no cool-down in the way


# ----------------------------------------------------------------------------------- unit
def test_a_micro_batch_is_judged_by_the_version_it_began_with(monkeypatch):
    """A version published while correlate is in the middle of a batch applies from the next batch."""
    import agents.correlate as correlate

    holder = RulesInForce(shipped_rule_set())
    monkeypatch.setattr(rules_versions, "_holder", holder)
    judged: list[tuple[str, str]] = []

    async def judge_one(event, rule_set):
        if event.message.value == b"2":  # the new version lands while the batch is being judged
            holder.switch_to(version("2027.04-1", routing=ROUTING_WITH_LOW_PUSH))
        judged.append((event.message.value.decode(), rule_set.version))

    monkeypatch.setattr(correlate, "correlate_one", judge_one)

    async def no_dead_letters(_event, _why):
        raise AssertionError("nothing here is a bad record")

    async def two_batches():
        for batch in (["1", "2", "3"], ["4", "5"]):
            events = [SimpleNamespace(message=SimpleNamespace(value=v.encode())) for v in batch]
            await correlate.judge_batch(events, rules_versions.in_force().current, no_dead_letters)

    asyncio.run(two_batches())
    assert judged == [("1", SHIPPED), ("2", SHIPPED), ("3", SHIPPED), ("4", "2027.04-1"), ("5", "2027.04-1")]


# ---------------------------------------------------------------------------- integration
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    own = worker_on_own_servers(tmp_path_factory.mktemp("rules-live"))
    yield own
    own.stop()


def antifraud(settings, *args: str) -> subprocess.CompletedProcess:
    """The real command, as an operator runs it."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "REDIS_URL": settings.redis_url,
           "ANTIFRAUD_RUN_DIR": str(settings.run_dir)}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)



def send_listed_call(producer: Producer, person_id: str) -> str:
    """A 20 s call from a listed number, 5 s ago, for a new person: a low-tier alert by the shipped rules."""
    signal = call(0, 20, listed=Typology.impersonate_police, person=person_id)
    signal.event_time = signal.ingested_at = datetime.now(UTC) - timedelta(seconds=5)
    producer.produce(CATALOG.topic("signals_enriched").name, msgspec.json.encode(signal), key=signal.person_id.encode())
    assert producer.flush(10) == 0
    return signal.person_id

class Traffic:
    """One listed-number call per new person (a low-tier alert each); their alerts and low-tier actions."""

    def __init__(self, settings):
        self.producer = Producer(producer_config(settings))
        self.alerts = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("alerts").name)
        self.actions = {ch: Reader(settings.kafka_bootstrap_servers, CATALOG.topic(f"actions_{ch.value}").name)
                        for ch in LOW_CHANNELS}
        self.seen: list[Alert] = []  # every alert so far, in the order read

    def person(self) -> str:
        return send_listed_call(self.producer, f"P-RULES-{next(PERSONS)}")

    def until_alert_with(self, rules_version: str, after: Alert | None = None,
                         timeout: float = 30.0) -> tuple[Alert, float]:
        """New persons, one every half second, until an alert (raised after `after`) carries
        `rules_version`; it, and how long that took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.person()
            time.sleep(0.5)
            self.read(0.05)
            since = self.seen[self.seen.index(after) + 1:] if after is not None else self.seen
            found = [a for a in since if a.rules_version == rules_version]
            if found:
                return found[0], time.monotonic() - started
        raise AssertionError(f"no alert carried {rules_version} within {timeout} s: {[a.rules_version for a in self.seen]}")

    def read(self, seconds: float) -> list[Alert]:
        self.seen = [msgspec.json.decode(m.value(), type=Alert) for m in self.alerts.read_for(seconds)]
        return self.seen

    def actions_of(self, alert: Alert, count: int) -> list[Action]:
        """The alert's low-tier actions, once `count` of them have come (or after 30 s)."""
        deadline, found = time.monotonic() + 30, []
        while len(found) < count and time.monotonic() < deadline:
            found = [a for reader in self.actions.values()
                     for a in (msgspec.json.decode(m.value(), type=Action) for m in reader.read_for(0.2))
                     if a.alert_id == alert.alert_id]
        return found


@pytest.fixture
def traffic(live):
    readers = Traffic(live.settings)
    yield readers
    for reader in (readers.alerts, *readers.actions.values()):
        reader.close()


def test_a_published_version_and_a_rollback_reach_the_next_alerts_without_a_restart(live, traffic, tmp_path):
    settings, worker = live.settings, live.worker
    pid = worker.process.pid

    first, _ = traffic.until_alert_with(SHIPPED, timeout=90)  # the worker's first start takes longest
    assert {(a.channel, a.rules_version) for a in traffic.actions_of(first, 2)} == {
        (Channel.sms, SHIPPED), (Channel.ai_voice, SHIPPED)}

    rules_file, routing_file = tmp_path / "rules.yaml", tmp_path / "routing.yaml"
    rules_file.write_text(rules_text("2027.05-1"), encoding="utf-8")
    routing_file.write_text(ROUTING_WITH_LOW_PUSH, encoding="utf-8")
    published = antifraud(settings, "rules", "publish", str(rules_file), "--routing", str(routing_file),
                          "--by", "analyst-7", "--why", "the low tier also pushes through the app")
    assert published.returncode == 0, published.stderr
    new, took = traffic.until_alert_with("2027.05-1")
    assert took < 15, f"the switch took {took:.1f} s"
    # Its actions were planned by the routing published with it: rules and routing switched together.
    assert {(a.channel, a.rules_version) for a in traffic.actions_of(new, 3)} == {
        (Channel.sms, "2027.05-1"), (Channel.ai_voice, "2027.05-1"), (Channel.app_push, "2027.05-1")}

    rolled = antifraud(settings, "rules", "rollback", SHIPPED, "--by", "lead-2", "--why", "too many pushes")
    assert rolled.returncode == 0, rolled.stderr
    back, took = traffic.until_alert_with(SHIPPED, after=new)
    assert took < 15, f"the rollback took {took:.1f} s"
    assert {(a.channel, a.rules_version) for a in traffic.actions_of(back, 2)} == {
        (Channel.sms, SHIPPED), (Channel.ai_voice, SHIPPED)}

    # In the order they were raised, the versions switched once each way: never back and forth.
    order = [a.rules_version for a in traffic.seen]
    switches = [(x, y) for x, y in zip(order, order[1:]) if x != y]
    assert switches == [(SHIPPED, "2027.05-1"), ("2027.05-1", SHIPPED)], order
    assert (worker.process.pid, worker.process.poll(), worker.restarts) == (pid, None, 0)

    history = antifraud(settings, "rules", "history")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines[0].startswith("  2027.05-1 ") and lines[0].endswith("analyst-7: the low tier also pushes through the app")
    assert lines[1].startswith(f"* {SHIPPED} ") and lines[1].endswith("lead-2 (rollback from 2027.05-1): too many pushes")


def test_a_malformed_rules_file_is_refused_and_nothing_is_published(live, tmp_path):
    settings = live.settings
    before = len(read_versions(settings))
    bad = tmp_path / "bad-rules.yaml"
    text = rules_text("2027.05-9").replace("  high: 90", "  high: 50", 1)  # below medium
    bad.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("tiers:"))
    refused = antifraud(settings, "rules", "publish", str(bad), "--by", "analyst-7", "--why", "oops")
    assert refused.returncode == 1
    assert f"{bad}:{line}: tiers: Value error, tier cut-offs must rise: low < medium < high" in refused.stderr
    assert "refused, nothing published" in refused.stderr
    assert len(read_versions(settings)) == before


def test_a_restarted_worker_judges_by_the_version_in_force_from_its_first_alert(live, traffic, tmp_path):
    settings, platform = live.settings, live.platform
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(rules_text("2027.05-2"), encoding="utf-8")
    published = antifraud(settings, "rules", "publish", str(rules_file), "--by", "analyst-7", "--why", "restart")
    assert published.returncode == 0, published.stderr
    traffic.until_alert_with("2027.05-2")

    platform.stop_child(live.worker)
    live.worker = platform.spawn("worker", "worker")
    first_after = next(PERSONS) + 1
    traffic.until_alert_with("2027.05-2", after=traffic.seen[-1], timeout=90)
    after = [a for a in traffic.seen if int(a.person_id.removeprefix("P-RULES-")) >= first_after]
    assert after and {a.rules_version for a in after} == {"2027.05-2"}, [a.rules_version for a in after]


def test_the_ledger_keeps_who_published_what_and_when(live, tmp_path):
    from sqlalchemy import select

    from oversight import schema
    from oversight.db import migrate
    from oversight.ledger import LedgerSink

    settings = live.settings
    on_topic = read_versions(settings)
    assert on_topic, "the tests above published"
    engine = migrate(settings, f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    sink = LedgerSink(settings, engine, group_id="test-rules-ledger")
    rp, rows, deadline = schema.rules_publications, set(), time.monotonic() + 60
    try:
        while len(rows) < len(on_topic) and time.monotonic() < deadline:
            sink.step()
            with engine.connect() as conn:
                rows = set(conn.execute(select(rp.c.publication_id, rp.c.version, rp.c.published_by, rp.c.why,
                                               rp.c.rollback_from)).all())
    finally:
        sink.close()
        engine.dispose()
    assert rows == {(r.publication_id, r.version, r.published_by, r.why, r.rollback_from) for r in on_topic}


def test_a_record_the_command_would_refuse_is_refused_by_the_worker_which_keeps_its_version(live, traffic):
    """Garbage and an invalid version written straight to the topic: counted, logged, nothing switches."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from streams.rules_publishing import history_lines, known_versions

    settings, worker = live.settings, live.worker
    in_force = known_versions(settings).in_force.version
    producer = Producer(producer_config(settings))
    topic = CATALOG.topic("rules_versions").name
    producer.produce(topic, b"not a rules version", key=b"junk")
    bad = version("2027.05-3", routing=ROUTING_WITHOUT_EMERGENCY_VISIT, by="script", why="raw write")
    producer.produce(topic, msgspec.json.encode(bad), key=b"2027.05-3")
    assert producer.flush(10) == 0

    def refused() -> float:
        text = httpx.get(worker.metrics_url, timeout=2).text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "antifraud_rules_versions_refused_total")

    deadline = time.monotonic() + 15
    while refused() < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert refused() == 2
    before = traffic.read(2.0)[-1]  # every alert so far: the next one is raised after the bad records
    traffic.until_alert_with(in_force, after=before)
    assert history_lines(known_versions(settings))[-1].startswith(f"* {in_force} ")
