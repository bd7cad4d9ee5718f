"""Reference data in Valkey: the key layout, versioned writes, and batched cached lookups.

One place for the layout (docs/enrichment.md explains it to operators):

    ref:registry:<phone|account>:<identifier>  -> PersonRecord (JSON)
    ref:registry:<cell|branch>:<code>          -> LocationRecord (JSON)
    ref:intel:<intel kind>:<value>             -> IntelRecord (JSON), expires at its expires_at
    ref:tomb:<registry|intel>:<kind>:<value>   -> event_time_ms of the delete that removed the entry
    channel ref:invalidations                  <- JSON list of the entry keys a write touched

The data keys mirror the normalized topics' record keys ("<kind>:<value>"), so an entry
is found from its update by reading, not by knowing code. Every record keeps the
event_time of the update that wrote it: an older update arriving later is ignored.

Lookups take a whole micro-batch: one MGET for every key the batch needs that the
in-process cache cannot answer. The cache is a bounded LRU that also remembers misses;
writers drop keys from it in-process and publish them so that every other process
drops them too. A process trusts its cache only while its subscription is live.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlsplit

import msgspec
import redis
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from streams.contracts.alerts import IntelHit
from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import AgeBand, IdentifierKind, IntelKind, IntelUpdate, RegistryUpdate
from streams.contracts.reference import normalize_intel_value
from streams.metrics import LATENCY_BUCKETS
from streams.settings import get_settings
from streams.valkey import VALKEY_OUTAGE_ERRORS, async_client

log = logging.getLogger(__name__)


CACHE_HITS = Counter("antifraud_enrich_cache_hits_total", "Reference keys answered by the in-process cache")
CACHE_MISSES = Counter("antifraud_enrich_cache_misses_total", "Reference keys read from Valkey")
LOOKUP_SECONDS = Histogram(
    "antifraud_valkey_lookup_seconds", "One batched reference lookup in Valkey (one MGET)", ["stage"],
    buckets=LATENCY_BUCKETS,
)

# ------------------------------------------------------------------------------ key layout
INVALIDATIONS_CHANNEL = "ref:invalidations"


def registry_key(kind: IdentifierKind, identifier: str) -> str:
    return f"ref:registry:{kind.value}:{identifier}"


def intel_key(kind: IntelKind, value: str) -> str:
    return f"ref:intel:{kind.value}:{value}"


def tombstone_key(entry_key: str) -> str:
    return "ref:tomb:" + entry_key.removeprefix("ref:")


# ------------------------------------------------------------------------------ records
class PersonRecord(msgspec.Struct, frozen=True):
    person_id: str
    county: str
    station: str
    grid: str | None
    age_band: AgeBand
    student: bool
    event_time_ms: int


class LocationRecord(msgspec.Struct, frozen=True):
    county: str
    station: str
    grid: str | None
    event_time_ms: int


class IntelRecord(msgspec.Struct, frozen=True):
    typology: Typology
    confidence: float
    source: str
    expires_at_ms: int | None
    event_time_ms: int

    def live(self, now_ms: int) -> bool:
        # Valkey expires the key at expires_at too; this covers a copy held in a cache.
        return self.expires_at_ms is None or self.expires_at_ms > now_ms


PERSON_KINDS = (IdentifierKind.phone, IdentifierKind.account)
_DECODERS = {
    "ref:registry:phone:": msgspec.json.Decoder(PersonRecord),
    "ref:registry:account:": msgspec.json.Decoder(PersonRecord),
    "ref:registry:cell:": msgspec.json.Decoder(LocationRecord),
    "ref:registry:branch:": msgspec.json.Decoder(LocationRecord),
    "ref:intel:": msgspec.json.Decoder(IntelRecord),
}
_ENCODE = msgspec.json.encode


def decode_record(key: str, raw: bytes | None):
    if raw is None:
        return None
    for prefix, decoder in _DECODERS.items():
        if key.startswith(prefix):
            try:
                return decoder.decode(raw)
            except msgspec.DecodeError:
                # The family only: the rest of a key is a phone number or an account.
                log.error("undecodable reference record under %s:…, treated as absent", prefix.rstrip(":"))
                return None
    return None


# ------------------------------------------------------------------------------ writes
def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ReferenceWrite:
    """One update as a Valkey write: a record to store, or None to remove the entry."""

    key: str
    event_time_ms: int
    record: bytes | None
    expires_at_ms: int | None = None
    outcome: str = "upsert"  # upsert, delete, or expired (an upsert already past its expires_at)


def write_for(update: IntelUpdate | RegistryUpdate, now_ms: int) -> ReferenceWrite:
    version = epoch_ms(update.event_time)
    if isinstance(update, IntelUpdate):
        key = intel_key(update.kind, update.value)
        if update.op is UpdateOp.delete:
            return ReferenceWrite(key, version, None, outcome="delete")
        expires = None if update.expires_at is None else epoch_ms(update.expires_at)
        if expires is not None and expires <= now_ms:
            return ReferenceWrite(key, version, None, outcome="expired")
        record = IntelRecord(update.typology, update.confidence, update.source, expires, version)
        return ReferenceWrite(key, version, _ENCODE(record), expires)
    key = registry_key(update.identifier_kind, update.identifier)
    if update.op is UpdateOp.delete:
        return ReferenceWrite(key, version, None, outcome="delete")
    if update.identifier_kind in PERSON_KINDS:
        record = PersonRecord(update.person_id, update.county, update.station, update.grid, update.age_band,
                              update.student, version)
    else:
        record = LocationRecord(update.county, update.station, update.grid, version)
    return ReferenceWrite(key, version, _ENCODE(record))


# Newest event_time wins; on a tie the later write wins (same partition: the log's order).
# A delete leaves a tombstone with its event_time so that an older upsert cannot bring the
# entry back. Atomic per key, and one script call per write in a single pipeline.
_APPLY_IF_NEWER = """
local incoming = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and tonumber(stored['event_time_ms'] or 0) > incoming then return 0 end
end
local removed_at = tonumber(redis.call('GET', KEYS[2]) or '')
if removed_at and removed_at > incoming then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
  return 1
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
redis.call('DEL', KEYS[2])
return 1
"""


# ------------------------------------------------------------------------------ lookup rules
def number_prefixes(number: str) -> list[str]:
    """Every prefix a number_range entry can have ('+' and 2..15 digits), longest first."""
    return [number[:n] for n in range(len(number), 2, -1)]


def url_host(url: str) -> str | None:
    """Host of a URL, lowercased, without port or user; a bare 'host/path' (as SMS carry them) too."""
    text = url.strip().lower()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    host = (host or "").rstrip(".")
    return host or None


MAX_DOMAIN_LABELS = 10  # deeper hosts are checked whole and by their last 10 labels


def host_and_parent_domains(host: str) -> list[str]:
    """'a.b.example.test' -> [itself, 'b.example.test', 'example.test']: most specific first, no bare TLD."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    labels = host.split(".")
    if len(labels) == 1:
        return [host]
    first = max(0, len(labels) - MAX_DOMAIN_LABELS)
    return list(dict.fromkeys([host] + [".".join(labels[i:]) for i in range(first, len(labels) - 1)]))


def derived_person_id(identifier: str) -> str:
    """Stable pseudonymous id of an unregistered resident: never the identifier itself."""
    return "U" + hashlib.sha256(identifier.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class IntelProbe:
    """Look for `kind` entries under `keys` (most specific first); a hit names `matched_on`."""

    matched_on: str
    kind: IntelKind
    keys: tuple[str, ...]


def number_probes(matched_on: str, number: str) -> list[IntelProbe]:
    return [
        IntelProbe(matched_on, IntelKind.fraud_number, (intel_key(IntelKind.fraud_number, number),)),
        IntelProbe(matched_on, IntelKind.number_range,
                   tuple(intel_key(IntelKind.number_range, p) for p in number_prefixes(number))),
    ]


def url_probes(matched_on: str, url: str) -> list[IntelProbe]:
    exact = normalize_intel_value(IntelKind.phishing_url, url)
    probes = [IntelProbe(matched_on, IntelKind.phishing_url, (intel_key(IntelKind.phishing_url, exact),))]
    host = url_host(url)
    if host:
        domains = host_and_parent_domains(host)
        probes.append(IntelProbe(matched_on, IntelKind.phishing_domain,
                                 tuple(intel_key(IntelKind.phishing_domain, d) for d in domains)))
    return probes


def account_probes(matched_on: str, account: str) -> list[IntelProbe]:
    return [IntelProbe(matched_on, IntelKind.mule_account, (intel_key(IntelKind.mule_account, account),))]


def apk_probes(matched_on: str, sha256: str) -> list[IntelProbe]:
    return [IntelProbe(matched_on, IntelKind.fraud_apk, (intel_key(IntelKind.fraud_apk, sha256.lower()),))]


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """What one event needs: its resident (identifiers in order of preference), a location, intel probes."""

    residents: tuple[tuple[IdentifierKind, str], ...] = ()
    location: tuple[IdentifierKind, str] | None = None
    probes: tuple[IntelProbe, ...] = ()

    def keys(self) -> list[str]:
        keys = [registry_key(kind, value) for kind, value in self.residents]
        if self.location:
            keys.append(registry_key(*self.location))
        for probe in self.probes:
            keys.extend(probe.keys)
        return keys


@dataclass(frozen=True, slots=True)
class LookupResult:
    person: PersonRecord | None = None
    resident: tuple[IdentifierKind, str] | None = None  # the identifier the person was found by
    location: LocationRecord | None = None
    intel: list[IntelHit] = field(default_factory=list)


# ------------------------------------------------------------------------------ the cache
NOT_CACHED = object()


class ReferenceCache:
    """A bounded LRU of decoded records; None (a miss) is cached too.

    `epoch` moves on every invalidation: a lookup that read Valkey before an
    invalidation must not put what it read into the cache afterwards.
    """

    def __init__(self, size: int, max_age_s: float) -> None:
        self.size, self.max_age_s = size, max_age_s
        self.epoch = 0
        self.enabled = False  # until a live subscription guarantees that invalidations reach us
        self._entries: OrderedDict[str, tuple[float, object]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str):
        if not self.enabled:
            return NOT_CACHED
        entry = self._entries.get(key)
        if entry is None:
            return NOT_CACHED
        stored_at, value = entry
        if time.monotonic() - stored_at > self.max_age_s:
            del self._entries[key]
            return NOT_CACHED
        self._entries.move_to_end(key)
        return value

    def put_many(self, values: dict[str, object], epoch: int) -> None:
        if not self.enabled or epoch != self.epoch or self.size == 0:
            return
        now = time.monotonic()
        for key, value in values.items():
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def invalidate(self, keys) -> None:
        self.epoch += 1
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def enable(self) -> None:
        self.clear()  # whatever was cached before may have missed an invalidation
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False
        self.clear()


# ------------------------------------------------------------------------------ the store
class ReferenceStore:
    def __init__(self, client: aioredis.Redis, cache: ReferenceCache, tombstone_ttl_s: int = 7 * 86400) -> None:
        self.client = client
        self.cache = cache
        self.tombstone_ttl_s = tombstone_ttl_s
        self._apply_script = client.register_script(_APPLY_IF_NEWER)

    async def lookup_batch(self, requests: list[LookupRequest], stage: str = "enrich") -> list[LookupResult]:
        """Resolve a micro-batch: cached keys from memory, all the others in one MGET."""
        epoch = self.cache.epoch
        records: dict[str, object] = {}
        missing: list[str] = []
        for key in dict.fromkeys(k for request in requests for k in request.keys()):
            cached = self.cache.get(key)
            if cached is NOT_CACHED:
                missing.append(key)
            else:
                records[key] = cached
        CACHE_HITS.inc(len(records))
        CACHE_MISSES.inc(len(missing))
        if missing:
            started = time.perf_counter()
            raw = await self.client.mget(missing)
            LOOKUP_SECONDS.labels(stage).observe(time.perf_counter() - started)
            read = {key: decode_record(key, value) for key, value in zip(missing, raw)}
            self.cache.put_many(read, epoch)
            records.update(read)
        now_ms = int(time.time() * 1000)
        return [resolve(request, records, now_ms) for request in requests]

    async def apply(self, writes: list[ReferenceWrite]) -> list[bool]:
        """Write a batch in one pipeline (newest event_time wins) and invalidate every cache; True = applied."""
        if not writes:
            return []
        pipe = self.client.pipeline(transaction=False)
        for w in writes:
            await self._apply_script(
                keys=[w.key, tombstone_key(w.key)],
                args=[w.event_time_ms, w.record or b"", w.expires_at_ms or "", self.tombstone_ttl_s],
                client=pipe,
            )
        keys = list(dict.fromkeys(w.key for w in writes))
        pipe.publish(INVALIDATIONS_CHANNEL, _ENCODE(keys))
        results = await pipe.execute()
        self.cache.invalidate(keys)  # this process at once; the others through the channel
        return [bool(r) for r in results[:-1]]

    async def follow_invalidations(self, redis_url: str, retry_max_s: float) -> None:
        """Subscribe (again after any outage) and drop the keys others invalidate; runs until cancelled.

        No silent reconnects (retries=0): a dropped connection may have lost messages, so
        the cache is off from the moment it drops until a new subscription is live.
        """
        backoff = 0.05
        decode_keys = msgspec.json.Decoder(list[str]).decode
        while True:
            client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0),
                                             health_check_interval=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(INVALIDATIONS_CHANNEL)
                self.cache.enable()
                backoff = 0.05
                log.info("reference cache: following %s", INVALIDATIONS_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    try:
                        self.cache.invalidate(decode_keys(message["data"]))
                    except msgspec.DecodeError:
                        self.cache.clear()  # unreadable: it may have named anything we hold
            except (*VALKEY_OUTAGE_ERRORS, redis.RedisError) as exc:
                if self.cache.enabled:  # once per outage, not once per retry
                    log.warning("reference cache off until the invalidation channel is back (%s)",
                                type(exc).__name__)
                self.cache.disable()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, retry_max_s)
            finally:
                await _quietly_close(pubsub, client)


async def _quietly_close(pubsub, client) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except Exception:  # closing a dead connection: nothing left to save
        pass


def resolve(request: LookupRequest, records: dict[str, object], now_ms: int) -> LookupResult:
    """The answer for one event from the records the batch read (pure: no I/O)."""
    person, resident = None, None
    for kind, value in request.residents:
        person = records.get(registry_key(kind, value))
        if person is not None:
            resident = (kind, value)
            break
    location = records.get(registry_key(*request.location)) if request.location else None
    hits, seen = [], set()
    for probe in request.probes:
        for key in probe.keys:
            record = records.get(key)
            if record is not None and record.live(now_ms):
                if (probe.matched_on, key) not in seen:
                    seen.add((probe.matched_on, key))
                    hits.append(IntelHit(kind=probe.kind, matched_on=probe.matched_on, typology=record.typology,
                                         confidence=record.confidence, source=record.source))
                break  # the most specific live entry of this list speaks for the field
    return LookupResult(person, resident, location, hits)


@lru_cache(maxsize=1)
def process_store() -> ReferenceStore:
    """This process's store: one Valkey client and the one cache every stage here shares."""
    settings = get_settings()
    cache = ReferenceCache(settings.enrich_cache_size, settings.enrich_cache_max_age_s)
    return ReferenceStore(async_client(settings), cache, settings.reference_tombstone_ttl_s)
