"""A restarted worker recovers its tables exactly: after a stop or a kill -9, with its local store kept or wiped."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import httpx
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.catalog import get_catalog
from streams.contracts.examples import EXAMPLES
from streams.kafka import producer_config
from streams.supervisor import Platform
from support import Reader, make_servers, make_settings

CATALOG = get_catalog()


def tally(url: str) -> dict[tuple[str, str], float]:
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return {}
    return {
        (s.labels["source"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "antifraud_ingest_tally" and s.value
    }


def wait_for_tally(worker, settings, expected: dict) -> dict:
    seen: dict = {}
    reader = Reader(settings.kafka_bootstrap_servers, CATALOG.topic("dead_letter").name)
    try:
        reader.read_until(lambda _m: seen.update(tally(worker.metrics_url)) or seen == expected, timeout=90)
    except AssertionError:
        raise AssertionError(f"tally {seen} != {expected}") from None
    finally:
        reader.close()
    return seen


def offer(settings, count: int, first: int) -> None:
    producer = Producer(producer_config(settings))
    now = datetime.now(UTC).isoformat()
    for n in range(first, first + count):
        telecom = dict(EXAMPLES["TelecomEvent"], event_id=f"recovery-{n}", event_time=now)
        producer.produce(CATALOG.topic("in_telecom").name, json.dumps(telecom).encode(), key=str(n).encode())
        producer.produce(CATALOG.topic("in_bank").name, b"not json %d" % n, key=str(n).encode())
    assert producer.flush(30) == 0


def kill(platform: Platform, worker) -> None:
    """A kill -9, the harder case of a stop: no commit, no store close, no leaving the group."""
    worker.process.kill()
    worker.process.wait()
    platform.stop()


def test_a_worker_killed_twice_recovers_ingest_tally_exactly_from_its_store_then_from_the_changelog(tmp_path):
    # One broker for both cases (each costs seconds of make test): first the local store is kept,
    # then it is wiped and everything must come back from the changelog.
    broker, valkey, servers = make_servers(tmp_path)
    settings = make_settings(servers)
    platform = Platform(settings)
    try:
        worker = platform.spawn("worker", "worker")
        offer(settings, 40, first=0)
        expected = {("in_telecom", "accepted"): 40.0, ("in_bank", "dead_lettered"): 40.0}
        before = wait_for_tally(worker, settings, expected)
        first = 40
        for store in ("kept", "wiped"):
            kill(platform, worker)
            if store == "wiped":
                shutil.rmtree(settings.run_dir / "faust")
            platform = Platform(settings)
            worker = platform.spawn("worker", "worker")
            assert wait_for_tally(worker, settings, before) == before, f"store {store}"

            # And it keeps counting from there, not from zero and not twice.
            offer(settings, 10, first=first)
            first += 10
            before = {("in_telecom", "accepted"): float(first), ("in_bank", "dead_lettered"): float(first)}
            assert wait_for_tally(worker, settings, before) == before, f"store {store}"
    finally:
        platform.stop()
        broker.stop()
        valkey.stop()
