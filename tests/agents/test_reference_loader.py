"""Reference loader: registry and intel updates land in Valkey as documented, newest first.

A real `antifraud worker` on its own embedded broker and Valkey; updates are produced to
the normalized topics (as ingest writes them) so that their order per key is exact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
import redis
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.catalog import get_catalog
from streams.contracts import Ingested
from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import AgeBand, IdentifierKind, IntelKind, IntelUpdate, RegistryUpdate
from streams.kafka import producer_config
from streams.reference import intel_key, registry_key, tombstone_key
from support import worker_on_own_servers

CATALOG = get_catalog()
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def loader(tmp_path_factory):
    own = worker_on_own_servers(tmp_path_factory.mktemp("loader"))
    settings, worker = own.settings, own.worker
    yield settings, worker, redis.Redis.from_url(settings.redis_url, decode_responses=True)
    own.stop()


def publish(settings, *updates) -> None:
    """As ingest would: an envelope on the normalized topic, keyed "<kind>:<value>"."""
    producer = Producer(producer_config(settings))
    for update in updates:
        if isinstance(update, IntelUpdate):
            topic, key = "norm_intel", f"{update.kind.value}:{update.value}"
        else:
            topic, key = "norm_registry", f"{update.identifier_kind.value}:{update.identifier}"
        envelope = Ingested(event=update, ingested_at=NOW, source_topic="test", source_partition=0, source_offset=0)
        producer.produce(CATALOG.topic(topic).name, msgspec.json.encode(envelope), key.encode())
    assert producer.flush(30) == 0


def registry(n: str, kind=IdentifierKind.phone, identifier="+8613800000001", when=NOW, **fields) -> RegistryUpdate:
    return RegistryUpdate(event_id=f"reg-{n}", event_time=when, identifier_kind=kind, identifier=identifier, **fields)


def intel(n: str, kind: IntelKind, value: str, when=NOW, **fields) -> IntelUpdate:
    return IntelUpdate(event_id=f"intel-{n}", event_time=when, kind=kind, value=value, **fields)


def updates_counted(worker) -> dict[tuple[str, str], float]:
    try:
        text = httpx.get(worker.metrics_url, timeout=2).text
    except httpx.HTTPError:
        return {}
    return {(s.labels["list"], s.labels["outcome"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "antifraud_reference_updates_total"}


def wait_until(settings, condition, timeout: float = 60.0) -> None:
    """Polls `condition` until it holds; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout:.0f} s")
        time.sleep(0.2)


def test_registry_upserts_persons_and_locations_and_tombstones_remove(loader):
    settings, worker, valkey = loader
    person = dict(person_id="P000000007", county="ZK01", station="ZK01-PS02", grid="ZK01-PS02-G03",
                  age_band=AgeBand.age_70_plus, student=False)
    publish(settings,
            registry("p1", **person),
            registry("a1", IdentifierKind.account, "acct_00aa11bb22", **person),
            registry("c1", IdentifierKind.cell, "ZK01-C0007", county="ZK01", station="ZK01-PS02"),
            registry("b1", IdentifierKind.branch, "ICBC-ZK01-01", county="ZK01", station="ZK01-PS01"),
            registry("r1", identifier="+8614900000001", **person),
            registry("r1-del", identifier="+8614900000001", op=UpdateOp.delete))
    phone_key = registry_key(IdentifierKind.phone, "+8613800000001")
    retired_key = registry_key(IdentifierKind.phone, "+8614900000001")
    wait_until(settings, lambda: valkey.exists(phone_key, "ref:registry:branch:ICBC-ZK01-01")
               == 2 and valkey.exists(tombstone_key(retired_key)))

    record = msgspec.json.decode(valkey.get(phone_key))
    assert record == {**person, "age_band": "70_plus", "event_time_ms": int(NOW.timestamp() * 1000)}
    assert msgspec.json.decode(valkey.get("ref:registry:account:acct_00aa11bb22"))["person_id"] == "P000000007"
    assert msgspec.json.decode(valkey.get("ref:registry:cell:ZK01-C0007")) == {
        "county": "ZK01", "station": "ZK01-PS02", "grid": None, "event_time_ms": int(NOW.timestamp() * 1000)}
    assert not valkey.exists(retired_key)  # the tombstone removed it
    assert valkey.ttl(tombstone_key(retired_key)) > 6 * 86400  # and is remembered against older upserts


def test_intel_expiry_and_removal(loader):
    settings, worker, valkey = loader
    expires = NOW + timedelta(days=30)
    publish(settings,
            intel("n1", IntelKind.fraud_number, "+8617000000002", typology=Typology.impersonate_police,
                  confidence=0.95, source="mps_list", expires_at=expires),
            intel("r1", IntelKind.number_range, "+86171123"),
            intel("d1", IntelKind.phishing_domain, "licai-0a1b2c.top.test"),
            intel("old", IntelKind.mule_account, "acct_mule_0001", expires_at=NOW - timedelta(hours=1)),
            intel("apk", IntelKind.fraud_apk, "ab" * 32),
            intel("apk-del", IntelKind.fraud_apk, "ab" * 32, op=UpdateOp.delete))
    number_key = intel_key(IntelKind.fraud_number, "+8617000000002")
    apk_key = intel_key(IntelKind.fraud_apk, "ab" * 32)
    wait_until(settings, lambda: valkey.exists(number_key, "ref:intel:number_range:+86171123",
                                               "ref:intel:phishing_domain:licai-0a1b2c.top.test") == 3
               and valkey.exists(tombstone_key(apk_key), tombstone_key(intel_key(IntelKind.mule_account,
                                                                                 "acct_mule_0001"))) == 2)

    assert msgspec.json.decode(valkey.get(number_key)) == {
        "typology": "impersonate_police", "confidence": 0.95, "source": "mps_list",
        "expires_at_ms": int(expires.timestamp() * 1000), "event_time_ms": int(NOW.timestamp() * 1000)}
    assert valkey.pexpiretime(number_key) == int(expires.timestamp() * 1000)  # EXPIREAT in Valkey itself
    assert valkey.ttl("ref:intel:number_range:+86171123") == -1  # no expires_at: kept until removed
    assert not valkey.exists(apk_key)
    assert not valkey.exists(intel_key(IntelKind.mule_account, "acct_mule_0001"))  # expired on arrival


def test_an_older_update_arriving_late_changes_nothing(loader):
    settings, worker, valkey = loader
    earlier = NOW - timedelta(minutes=10)
    person = dict(person_id="P000000008", county="ZK04", grid=None)
    publish(settings,
            registry("ooo-new", identifier="+8613800000008", station="ZK04-PS05", **person),
            registry("ooo-old", identifier="+8613800000008", station="ZK04-PS01", when=earlier, **person),
            intel("ooo-del", IntelKind.phishing_url, "https://kefu-0f.cc.test/login", op=UpdateOp.delete),
            intel("ooo-up", IntelKind.phishing_url, "https://kefu-0f.cc.test/login", when=earlier))
    wait_until(settings, lambda: updates_counted(worker).get(("phone", "stale"), 0) >= 1
               and updates_counted(worker).get(("phishing_url", "stale"), 0) >= 1)

    assert msgspec.json.decode(valkey.get(registry_key(IdentifierKind.phone, "+8613800000008")))["station"] \
        == "ZK04-PS05"
    assert not valkey.exists(intel_key(IntelKind.phishing_url, "https://kefu-0f.cc.test/login"))
    counted = updates_counted(worker)
    assert counted[("phone", "upsert")] >= 2 and counted[("mule_account", "expired")] == 1
    assert counted[("fraud_apk", "delete")] == 1 and counted[("cell", "upsert")] == 1
