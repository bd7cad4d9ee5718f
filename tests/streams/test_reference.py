"""Reference store: lookup rules (pure), versioned writes and batched, cached lookups on a real Valkey."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio as aioredis

from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import AgeBand, IdentifierKind, IntelKind, IntelUpdate, RegistryUpdate
from streams.embedded import start_valkey
from streams.reference import (
    INVALIDATIONS_CHANNEL,
    NOT_CACHED,
    LookupRequest,
    ReferenceCache,
    ReferenceStore,
    apk_probes,
    derived_person_id,
    host_and_parent_domains,
    intel_key,
    number_prefixes,
    number_probes,
    registry_key,
    tombstone_key,
    url_host,
    url_probes,
    write_for,
)

NOW = datetime.now(UTC)
NOW_MS = int(NOW.timestamp() * 1000)


# ----------------------------------------------------------------------------- pure helpers
def test_number_prefixes_longest_first_down_to_country_code():
    assert number_prefixes("+8617012345678") == [
        "+8617012345678", "+861701234567", "+86170123456", "+8617012345", "+861701234", "+86170123",
        "+8617012", "+861701", "+86170", "+8617", "+861", "+86",
    ]


@pytest.mark.parametrize("url, host", [
    ("https://User@Licai-1.Top.Test:8443/login?x=1", "licai-1.top.test"),
    ("licai.top.test/h5/123", "licai.top.test"),
    ("HTTP://www.kefu.cc.test./vip", "www.kefu.cc.test"),
    ("http://10.0.0.7:8080/a", "10.0.0.7"),
    ("http://[::1", None),
    ("   ", None),
])
def test_url_host(url, host):
    assert url_host(url) == host


def test_host_and_parent_domains():
    assert host_and_parent_domains("a.b.licai.top.test") == [
        "a.b.licai.top.test", "b.licai.top.test", "licai.top.test", "top.test"]
    assert host_and_parent_domains("10.0.0.7") == ["10.0.0.7"]
    assert host_and_parent_domains("localhost") == ["localhost"]
    deep = ".".join(f"l{i}" for i in range(30)) + ".test"
    candidates = host_and_parent_domains(deep)
    assert candidates[0] == deep and candidates[-1] == "l29.test" and len(candidates) == 10


def test_derived_person_id_is_stable_and_hides_the_identifier():
    pid = derived_person_id("+8613800000001")
    assert pid == derived_person_id("+8613800000001") != derived_person_id("+8613800000002")
    assert pid.startswith("U") and len(pid) == 17 and "13800000001" not in pid


def test_url_probes_exact_url_then_host_and_parents():
    exact, domain = url_probes("sms_url", "HTTPS://Pay.Licai.Top.Test/Login")  # the path keeps its case
    assert exact.keys == (intel_key(IntelKind.phishing_url, "https://pay.licai.top.test/Login"),)
    assert domain.keys == tuple(intel_key(IntelKind.phishing_domain, d)
                                for d in ("pay.licai.top.test", "licai.top.test", "top.test"))


def test_writes_carry_version_expiry_and_removal():
    intel = dict(event_id="i-1", event_time=NOW, kind=IntelKind.fraud_number, value="+8617000000002",
                 typology=Typology.fake_loan, confidence=0.9, source="carrier")
    upsert = write_for(IntelUpdate(**intel, expires_at=NOW + timedelta(days=1)), NOW_MS)
    assert (upsert.key, upsert.event_time_ms, upsert.outcome) == ("ref:intel:fraud_number:+8617000000002", NOW_MS, "upsert")
    assert upsert.expires_at_ms == NOW_MS + 86_400_000 and upsert.record
    expired = write_for(IntelUpdate(**intel, expires_at=NOW - timedelta(seconds=1)), NOW_MS)
    assert (expired.record, expired.outcome) == (None, "expired")
    deleted = write_for(IntelUpdate(**intel, op=UpdateOp.delete), NOW_MS)
    assert (deleted.record, deleted.outcome) == (None, "delete")
    cell = write_for(RegistryUpdate(event_id="r-1", event_time=NOW, identifier_kind=IdentifierKind.cell,
                                    identifier="ZK01-C0001", county="ZK01", station="ZK01-PS01"), NOW_MS)
    assert cell.key == "ref:registry:cell:ZK01-C0001" and b'"station":"ZK01-PS01"' in cell.record
    assert tombstone_key(cell.key) == "ref:tomb:registry:cell:ZK01-C0001"


def test_cache_is_bounded_caches_misses_and_refuses_stale_fills():
    cache = ReferenceCache(size=2, max_age_s=60)
    cache.enable()
    cache.put_many({"a": 1, "b": None}, cache.epoch)
    assert cache.get("b") is None  # a cached miss, not "not cached"
    cache.get("a")  # touch: b is now the least recently used
    cache.put_many({"c": 3}, cache.epoch)
    assert len(cache) == 2 and cache.get("a") == 1 and cache.get("c") == 3 and cache.get("b") is NOT_CACHED
    read_at = cache.epoch
    cache.invalidate(["a"])
    cache.put_many({"a": "stale"}, read_at)  # read before the invalidation: must not come back
    assert cache.get("a") is NOT_CACHED
    cache.disable()
    assert cache.get("c") is NOT_CACHED and len(cache) == 0


# ----------------------------------------------------------------------------- on a real Valkey
def run(coro):
    return asyncio.run(coro)


def registry_update(identifier: str, kind=IdentifierKind.phone, when=NOW, **changes) -> RegistryUpdate:
    person = dict(person_id="P000000042", county="ZK02", station="ZK02-PS03", grid="ZK02-PS03-G07",
                  age_band=AgeBand.age_70_plus) if kind in (IdentifierKind.phone, IdentifierKind.account) else \
        dict(county="ZK03", station="ZK03-PS01")
    return RegistryUpdate(**{"event_id": f"r-{uuid.uuid4().hex[:8]}", "event_time": when, "identifier_kind": kind,
                             "identifier": identifier, **person, **changes})


def intel_update(kind: IntelKind, value: str, when=NOW, **changes) -> IntelUpdate:
    return IntelUpdate(**{"event_id": f"i-{uuid.uuid4().hex[:8]}", "event_time": when, "kind": kind, "value": value,
                          "typology": Typology.investment, "confidence": 0.8, "source": "mps_list", **changes})


def unique_phone() -> str:
    return "+86139" + str(uuid.uuid4().int)[:8]


def new_store(url: str, cache_size: int = 1000) -> ReferenceStore:
    cache = ReferenceCache(cache_size, max_age_s=60)
    cache.enable()
    return ReferenceStore(aioredis.Redis.from_url(url), cache)


def mget_calls(url: str) -> int:
    return redis.Redis.from_url(url).info("commandstats").get("cmdstat_mget", {}).get("calls", 0)


def test_one_mget_resolves_a_batch(servers):
    phone, other, cell = unique_phone(), unique_phone(), f"C{uuid.uuid4().hex[:8]}"
    range_prefix = "+86171" + str(uuid.uuid4().int)[:3]
    domain = f"licai-{uuid.uuid4().hex[:6]}.top.test"

    async def scenario():
        store = new_store(servers.redis_url)
        await store.apply([write_for(u, NOW_MS) for u in (
            registry_update(phone), registry_update(cell, IdentifierKind.cell),
            intel_update(IntelKind.number_range, range_prefix[:-1]), intel_update(IntelKind.number_range, range_prefix,
                                                                                  typology=Typology.fake_loan),
            intel_update(IntelKind.phishing_domain, domain),
        )])
        requests = [
            LookupRequest(((IdentifierKind.phone, phone),), None,
                          tuple(number_probes("counterpart", range_prefix + "12345"))),
            LookupRequest(((IdentifierKind.phone, other),), (IdentifierKind.cell, cell),
                          tuple(url_probes("sms_url", f"https://a.b.{domain}/x"))),
        ]
        before = mget_calls(servers.redis_url)
        first = await store.lookup_batch(requests)
        assert mget_calls(servers.redis_url) == before + 1
        second = await store.lookup_batch(requests)  # all from the cache, misses included
        assert mget_calls(servers.redis_url) == before + 1 and second == first
        return first

    registered, unregistered = run(scenario())
    assert registered.person.person_id == "P000000042" and registered.resident == (IdentifierKind.phone, phone)
    assert [(h.kind, h.typology) for h in registered.intel] == [(IntelKind.number_range, Typology.fake_loan)]
    assert unregistered.person is None and unregistered.location.station == "ZK03-PS01"
    assert [(h.kind, h.matched_on) for h in unregistered.intel] == [(IntelKind.phishing_domain, "sms_url")]


def test_newest_event_time_wins_and_tombstones_hold(servers):
    phone = unique_phone()
    key = registry_key(IdentifierKind.phone, phone)
    earlier, later = NOW - timedelta(minutes=5), NOW

    async def scenario():
        store = new_store(servers.redis_url)
        assert await store.apply([write_for(registry_update(phone, when=later, station="ZK02-PS09"), NOW_MS),
                                  write_for(registry_update(phone, when=earlier, station="ZK02-PS01"), NOW_MS)]) \
            == ([True, False], [[], []])
        station = (await store.lookup_batch([LookupRequest(((IdentifierKind.phone, phone),))]))[0].person.station
        assert await store.apply([write_for(registry_update(phone, when=later, op=UpdateOp.delete), NOW_MS),
                                  write_for(registry_update(phone, when=earlier), NOW_MS)]) == ([True, False], [[], []])
        gone = (await store.lookup_batch([LookupRequest(((IdentifierKind.phone, phone),))]))[0].person
        # The same event_time again (a redelivery, or upsert then delete at one instant): the later write wins.
        assert await store.apply([write_for(registry_update(phone, when=later), NOW_MS)]) == ([True], [[]])
        return station, gone

    station, gone = run(scenario())
    assert station == "ZK02-PS09" and gone is None
    client = redis.Redis.from_url(servers.redis_url)
    assert client.exists(key) and not client.exists(tombstone_key(key))


def test_expiry_becomes_a_valkey_expireat_and_counts_until_then(servers):
    value = "+8617" + str(uuid.uuid4().int)[:9]
    written_at = datetime.now(UTC)
    expires = written_at + timedelta(seconds=1.5)

    async def scenario():
        store = new_store(servers.redis_url)
        update = intel_update(IntelKind.fraud_number, value, when=written_at, expires_at=expires)
        await store.apply([write_for(update, int(written_at.timestamp() * 1000))])
        request = LookupRequest(probes=tuple(number_probes("counterpart", value)))
        live = (await store.lookup_batch([request]))[0].intel
        await asyncio.sleep(max(0.0, expires.timestamp() - time.time()) + 0.1)
        return live, (await store.lookup_batch([request]))[0].intel  # from the cache: its own expiry check

    live, after = run(scenario())
    assert [h.kind for h in live] == [IntelKind.fraud_number] and after == []
    assert not redis.Redis.from_url(servers.redis_url).exists(intel_key(IntelKind.fraud_number, value))


def test_another_process_write_reaches_this_cache(servers):
    apk = uuid.uuid4().hex * 2

    async def scenario():
        writer, reader = new_store(servers.redis_url), new_store(servers.redis_url)
        reader.cache.disable()  # trusted only once its own subscription is live
        follower = asyncio.create_task(reader.follow_invalidations(servers.redis_url, retry_max_s=0.5))
        while not reader.cache.enabled:
            await asyncio.sleep(0.01)
        lookup = LookupRequest(probes=tuple(apk_probes("apk", apk)))
        assert (await reader.lookup_batch([lookup]))[0].intel == []  # a miss, now cached
        await writer.apply([write_for(intel_update(IntelKind.fraud_apk, apk), NOW_MS)])
        started = time.monotonic()
        while not (await reader.lookup_batch([lookup]))[0].intel:
            assert time.monotonic() - started < 1.0, "invalidation did not arrive within 1 s"
            await asyncio.sleep(0.01)
        follower.cancel()
        return time.monotonic() - started

    assert run(scenario()) < 1.0


def test_cache_is_off_while_the_invalidation_channel_is_down(tmp_path):
    valkey = start_valkey(tmp_path)
    port = valkey.port
    try:
        async def scenario():
            store = new_store(valkey.url)
            store.cache.disable()
            follower = asyncio.create_task(store.follow_invalidations(valkey.url, retry_max_s=0.2))
            await wait_for(lambda: store.cache.enabled)
            valkey.stop()
            await wait_for(lambda: not store.cache.enabled)
            restarted = start_valkey(tmp_path, port=port)
            await wait_for(lambda: store.cache.enabled)
            subscribers = redis.Redis.from_url(restarted.url).pubsub_numsub(INVALIDATIONS_CHANNEL)
            follower.cancel()
            return restarted, subscribers

        restarted, subscribers = run(scenario())
        restarted.stop()
        assert subscribers == [(INVALIDATIONS_CHANNEL.encode(), 1)]
    finally:
        valkey.stop()


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)
