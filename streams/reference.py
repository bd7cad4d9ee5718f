"""Reference data in Valkey: the key layout, versioned writes, and batched cached lookups.

One place for the layout (docs/enrichment.md explains it to operators):

    ref:registry:<phone|account>:<identifier>  -> PersonRecord (JSON)
    ref:registry:<cell|branch>:<code>          -> LocationRecord (JSON)
    ref:intel:<intel kind>:<value>             -> IntelRecord (JSON), expires at its expires_at
    ref:tomb:<registry|intel>:<kind>:<value>   -> event_time_ms of the delete that removed the entry
    ref:contact:<intel kind>:<value>           -> hash "<person id> <field> <event id>" -> [event time ms, evidence]
                                                  (each field expires when its contact leaves the reach-back window)
    ref:applied                                -> hash "<norm topic>:<partition>" -> highest offset applied
    channel ref:invalidations                  <- {"keys": [entry keys a write touched], "applied": {...}}

The data keys mirror the normalized topics' record keys ("<kind>:<value>"), so an entry
is found from its update by reading, not by knowing code. Every record keeps the
event_time of the update that wrote it: an older update arriving later is ignored.

Lookups take a whole micro-batch: one MGET for every key the batch needs that the
in-process cache cannot answer. The cache is a bounded LRU that also remembers misses;
writers drop keys from it in-process and publish them so that every other process
drops them too. A process trusts its cache only while its subscription is live.

Reference before judgement (docs/enrichment.md): the loader records in `ref:applied`, in
the pipeline of its writes, how far it has applied each normalized reference partition;
enrich compares that with the partitions' end offsets before it judges a batch
(`ReferenceBarrier`). Late intelligence: enrich registers, atomically with re-reading the
entry, which residents' signals touched an exact-match entry (`ref:contact:`); the loader
reads that index after each new or changed entry and hands the residents to correlate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
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

from streams.contracts.alerts import IntelHit, SignalEvidence
from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import (
    AgeBand,
    IdentifierKind,
    IntelKind,
    IntelUpdate,
    RegistryUpdate,
    normalize_intel_value,
)
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
APPLIED_KEY = "ref:applied"
# Lists matched by one exact key, whose contacts are indexed for late intelligence. Ranges and
# parent domains are not (one number or host would touch many keys): see docs/enrichment.md.
CONTACT_KINDS = frozenset({IntelKind.mule_account, IntelKind.fraud_number, IntelKind.phishing_url, IntelKind.fraud_apk})


def registry_key(kind: IdentifierKind, identifier: str) -> str:
    return f"ref:registry:{kind.value}:{identifier}"


def intel_key(kind: IntelKind, value: str) -> str:
    return f"ref:intel:{kind.value}:{value}"


def tombstone_key(entry_key: str) -> str:
    return "ref:tomb:" + entry_key.removeprefix("ref:")


def contact_key(entry_key: str) -> str:
    """The contact index of an intel entry: who touched `ref:intel:<kind>:<value>`."""
    return "ref:contact:" + entry_key.removeprefix("ref:intel:")


def partition_id(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


@dataclass(frozen=True, slots=True)
class Contact:
    """A signal that touched (probed) an exact intel entry, whose it is, and what correlation needs of it."""

    entry_key: str
    person_id: str
    event_id: str
    event_time_ms: int
    matched_on: str = ""
    evidence: SignalEvidence | None = None  # None in an index entry written before the reach-back (issue 21)

    @property
    def field(self) -> str:
        return f"{self.person_id} {self.matched_on} {self.event_id}"

    @property
    def value(self) -> bytes:
        return _CONTACT_ENCODER.encode(_ContactValue(self.event_time_ms, self.evidence))


class _ContactValue(msgspec.Struct, array_like=True):
    event_time_ms: int
    evidence: SignalEvidence | None = None


_CONTACT_ENCODER = msgspec.json.Encoder()
_CONTACT_DECODER = msgspec.json.Decoder(_ContactValue | int)  # a bare int: the index before issue 21


def contacts_of(request: LookupRequest, person_id: str, event_id: str, event_time_ms: int,
                evidence: Callable[[], SignalEvidence | None] = lambda: None) -> list[Contact]:
    """The signal's contacts with exact entries; `evidence` is asked only when there is one (it costs a fact)."""
    probes = [probe for probe in request.probes if probe.kind in CONTACT_KINDS and len(probe.keys) == 1]
    if not probes:
        return []
    kept = evidence()
    return [Contact(probe.keys[0], person_id, event_id, event_time_ms, probe.matched_on, kept) for probe in probes]


def parse_contacts(entry_key: str, raw: dict) -> list[Contact]:
    out = []
    for field_, value in raw.items():
        field_ = field_.decode() if isinstance(field_, bytes) else field_
        person_id, matched_on, event_id = (field_.split(" ", 2) + ["", ""])[:3]
        try:
            decoded = _CONTACT_DECODER.decode(value)
        except msgspec.DecodeError:
            continue
        if isinstance(decoded, int):
            decoded = _ContactValue(decoded)
        out.append(Contact(entry_key, person_id, event_id, decoded.event_time_ms, matched_on, decoded.evidence))
    return out


RACE_S = 60  # a contact this close to the listing may have crossed it on the way: repaired at once, not paced


def reach_back_contacts(contacts: list[Contact], listed_at_ms: int, now_ms: int, window_s: int,
                        fresh_listing_s: int) -> tuple[list[Contact], list[Contact]]:
    """The contacts a new or changed entry reaches back to (docs/detection.md), as (at once, paced).

    An entry listed within `fresh_listing_s` before it is applied is news: every resident who
    touched it in the `window_s` before the listing, or since. An older listing applied now (a
    cold start loading a list) is history: only the contacts of the last `fresh_listing_s`, the
    signals judged while it was loading. A contact within RACE_S of the listing (or of now, for
    history), or after it, is a signal that crossed the entry: it goes to correlation at once. The
    others are the reach-back proper, paced behind the live path (agents/reach_back.py), so a bulk
    list never queues in front of a live listing's repair.
    """
    fresh = now_ms - listed_at_ms <= fresh_listing_s * 1000
    anchor = listed_at_ms if fresh else now_ms
    horizon = listed_at_ms - window_s * 1000 if fresh else now_ms - fresh_listing_s * 1000
    at_once, paced = [], []
    for c in contacts:
        if c.event_time_ms >= horizon:
            (at_once if c.event_time_ms >= anchor - RACE_S * 1000 else paced).append(c)
    return at_once, paced


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


# The progress of a partition only rises (a loader that took over a partition re-applies from its
# committed offset: what is already applied stays applied).
_RAISE_APPLIED = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


def _indexed(entry_key: str) -> bool:
    kind = entry_key.removeprefix("ref:intel:").split(":", 1)[0]
    return kind in {k.value for k in CONTACT_KINDS}


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
        # Per normalized reference partition, the highest offset whose writes this cache has been
        # invalidated for (from the invalidation messages): the barrier trusts the cache only up to it.
        self.seen: dict[str, int] = {}

    def covers(self, targets: dict[str, int]) -> bool:
        """Every write up to these offsets has been invalidated here (so a cached entry is not older)."""
        return all(self.seen.get(part, -1) >= offset for part, offset in targets.items())

    def saw(self, applied: dict[str, int]) -> None:
        for part, offset in applied.items():
            if offset > self.seen.get(part, -1):
                self.seen[part] = offset

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

    async def lookup_batch(self, requests: list[LookupRequest], stage: str = "enrich",
                           use_cache: bool = True) -> list[LookupResult]:
        """Resolve a micro-batch: cached keys from memory, all the others in one MGET."""
        records = await self.lookup_records(requests, stage, use_cache)
        now_ms = int(time.time() * 1000)
        return [resolve(request, records, now_ms) for request in requests]

    async def lookup_records(self, requests: list[LookupRequest], stage: str = "enrich",
                             use_cache: bool = True) -> dict[str, object]:
        """Every key the batch needs, decoded: from the cache (unless told not to), the rest in one MGET."""
        epoch = self.cache.epoch
        records: dict[str, object] = {}
        missing: list[str] = []
        for key in dict.fromkeys(k for request in requests for k in request.keys()):
            cached = self.cache.get(key) if use_cache else NOT_CACHED
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
        return records

    async def register_contacts(self, contacts: list[Contact], window_s: int) -> dict[str, object]:
        """Index who touched each exact entry and, in the same transaction, read those entries again.

        Atomic (MULTI/EXEC) against the loader's write of an entry and its read of the index that
        follows it: either this read sees the entry, or the loader's read sees the contact. Each
        contact expires on its own when it leaves the reach-back window (a hash field expiry: the
        index of a number called every minute still forgets its three-day-old callers).
        """
        if not contacts:
            return {}
        keys = list(dict.fromkeys(c.entry_key for c in contacts))
        pipe = self.client.pipeline(transaction=True)
        pipe.mget(keys)
        now_ms = int(time.time() * 1000)
        for c in contacts:
            forget_at_ms = c.event_time_ms + window_s * 1000
            if forget_at_ms > now_ms:  # an event older than the window is judged, never reached back to
                pipe.hsetex(contact_key(c.entry_key), c.field, c.value, pxat=forget_at_ms)
        results = await pipe.execute()
        return {key: decode_record(key, raw) for key, raw in zip(keys, results[0])}

    async def applied_offsets(self) -> dict[str, int]:
        """`ref:applied`: per normalized reference partition, the highest offset the loader has applied."""
        raw = await self.client.hgetall(APPLIED_KEY)
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    async def apply(self, writes: list[ReferenceWrite], applied: dict[str, int] | None = None
                    ) -> tuple[list[bool], list[list[Contact]]]:
        """Write a batch in one pipeline (newest event_time wins), record how far each partition is applied,
        and invalidate every cache. Returns per write: applied or not, and the contacts of an applied
        intel upsert of an indexed list (read after the write: see `register_contacts`)."""
        applied = applied or {}
        if not writes and not applied:
            return [], []
        pipe = self.client.pipeline(transaction=False)
        indexed = [w.record is not None and w.key.startswith("ref:intel:") and _indexed(w.key) for w in writes]
        for w, with_contacts in zip(writes, indexed):
            await self._apply_script(
                keys=[w.key, tombstone_key(w.key)],
                args=[w.event_time_ms, w.record or b"", w.expires_at_ms or "", self.tombstone_ttl_s],
                client=pipe,
            )
            if with_contacts:
                pipe.hgetall(contact_key(w.key))
        keys = list(dict.fromkeys(w.key for w in writes))
        # Invalidate before the progress is visible: whoever sees `ref:applied` move has been sent the keys.
        pipe.publish(INVALIDATIONS_CHANNEL, _ENCODE({"keys": keys, "applied": applied}))
        for part, offset in applied.items():
            pipe.eval(_RAISE_APPLIED, 1, APPLIED_KEY, part, offset)
        results = iter(await pipe.execute())
        self.cache.invalidate(keys)  # this process at once; the others through the channel
        done, contacts = [], []
        for w, with_contacts in zip(writes, indexed):
            ok = bool(next(results))
            raw = next(results) if with_contacts else {}
            done.append(ok)
            contacts.append(parse_contacts(w.key, raw) if ok else [])
        return done, contacts

    async def follow_invalidations(self, redis_url: str, retry_max_s: float) -> None:
        """Subscribe (again after any outage) and drop the keys others invalidate; runs until cancelled.

        No silent reconnects (retries=0): a dropped connection may have lost messages, so
        the cache is off from the moment it drops until a new subscription is live.
        """
        backoff = 0.05
        while True:
            client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0),
                                             health_check_interval=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                # Read before subscribing: every write counted here was done before the cache is emptied below.
                already = {(k.decode() if isinstance(k, bytes) else k): int(v)
                           for k, v in (await client.hgetall(APPLIED_KEY)).items()}
                await pubsub.subscribe(INVALIDATIONS_CHANNEL)
                self.cache.enable()
                self.cache.saw(already)
                backoff = 0.05
                log.info("reference cache: following %s", INVALIDATIONS_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    try:
                        keys, applied = decode_invalidation(message["data"])
                        self.cache.invalidate(keys)
                        self.cache.saw(applied)
                    except (msgspec.DecodeError, msgspec.ValidationError):
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


class _Invalidation(msgspec.Struct):
    keys: list[str] = []
    applied: dict[str, int] = {}


_DECODE_INVALIDATION = msgspec.json.Decoder(list[str] | _Invalidation)


def decode_invalidation(data: bytes) -> tuple[list[str], dict[str, int]]:
    """A message of `ref:invalidations`: the loader's object, or a plain JSON list of keys (by hand)."""
    message = _DECODE_INVALIDATION.decode(data)
    if isinstance(message, list):
        return message, {}
    return message.keys, message.applied


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


# ------------------------------------------------------------------------------ the barrier
BARRIER_POLL_S = 0.005
BARRIER_WAITS = Counter("antifraud_reference_barrier_waits_total",
                        "Enrich batches that waited for the reference loader before being judged")
BARRIER_TIMEOUTS = Counter("antifraud_reference_barrier_timeouts_total",
                           "Enrich batches judged without waiting any longer for a reference partition "
                           "(the loader did not reach its end offset in time)", ["partition"])
BARRIER_SKIPS = Counter("antifraud_reference_barrier_skips_total",
                        "Enrich batches judged without waiting for a reference partition the loader is too far "
                        "behind on to catch up within the timeout (a bulk list loading)", ["partition"])
BARRIER_UNANSWERED = Counter("antifraud_reference_barrier_unanswered_total",
                             "Enrich batches judged without the barrier because the broker did not answer for the "
                             "reference topics' end offsets in time (a broker restarting)")
BARRIER_SECONDS = Histogram("antifraud_reference_barrier_seconds",
                            "Before an enrich batch is judged: end offsets asked and the loader's progress compared",
                            buckets=LATENCY_BUCKETS)


class ReferenceBarrier:
    """Before a batch is judged: everything already appended to the normalized reference topics is applied.

    One ListOffsets request (the partitions' end offsets, asked after the batch was read) and
    one HGETALL of `ref:applied` per batch; while the loader is behind, the HGETALL is
    repeated every 5 ms, up to `timeout_s`. A partition the loader did not reach in time is
    given up for that end offset (counted, logged): it costs one wait, not one per batch. One
    more than `max_backlog` records behind is given up without a wait.
    """

    def __init__(self, store: ReferenceStore, bootstrap: str, topics: dict[str, int], timeout_s: float,
                 max_backlog: int | None = None) -> None:
        self.store, self.bootstrap, self.timeout_s, self.max_backlog = store, bootstrap, timeout_s, max_backlog
        self.partitions = [(topic, p) for topic, count in topics.items() for p in range(count)]
        self.given_up: dict[str, int] = {}
        self._consumer = None
        self._skip_logged = 0.0

    async def end_offsets(self) -> dict[str, int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None:
            # Held before it starts: a start cut short by the timeout is stopped by close() too.
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
            await self._consumer.start()
        ends = await self._consumer.end_offsets([TopicPartition(t, p) for t, p in self.partitions])
        return {partition_id(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _ends_in_time(self) -> dict[str, int] | None:
        """The end offsets, or None when the broker does not answer within the barrier's timeout.

        Across a broker restart aiokafka's ListOffsets waited out its 40 s request timeout and
        raised, which stopped enrich (and the worker) for a 3 s outage; a fresh client finds the
        broker again, so the one that failed is dropped."""
        from aiokafka.errors import KafkaError

        try:
            return await asyncio.wait_for(self.end_offsets(), self.timeout_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            BARRIER_UNANSWERED.inc()
            log.warning("reference barrier: no end offsets from the broker within %.1f s (%s); judging without it",
                        self.timeout_s, type(exc).__name__)
            await self.close()
            return None

    async def wait(self) -> bool:
        """Wait until the loader has applied what is on the reference topics now; True = the cache may answer."""
        started = time.perf_counter()
        ends = await self._ends_in_time()
        if ends is None:
            return False  # Valkey itself answers, as after a barrier timeout
        targets = {part: end - 1 for part, end in ends.items() if end > 0}
        deadline, waited = started + self.timeout_s, False
        while True:
            applied = await self.store.applied_offsets()
            behind = {part: off for part, off in targets.items()
                      if applied.get(part, -1) < off and self.given_up.get(part, -1) < off}
            if not behind:
                break
            if self.max_backlog is not None and self._skip_far_behind(behind, applied):
                continue  # look again: what is left is near enough to wait for
            if not waited:
                waited = True
                BARRIER_WAITS.inc()
            if time.perf_counter() >= deadline:
                for part, off in behind.items():
                    self.given_up[part] = off
                    BARRIER_TIMEOUTS.labels(part).inc()
                log.warning("reference barrier: the loader did not reach %s within %.1f s; judging without it",
                            ", ".join(f"{part}@{off}" for part, off in sorted(behind.items())), self.timeout_s)
                break
            await asyncio.sleep(BARRIER_POLL_S)
        BARRIER_SECONDS.observe(time.perf_counter() - started)
        trusted = {part: off for part, off in targets.items() if self.given_up.get(part, -1) < off}
        return self.store.cache.covers(trusted)

    def _skip_far_behind(self, behind: dict[str, int], applied: dict[str, int]) -> bool:
        """Give up at once on partitions more than `max_backlog` records behind: a bulk list of 100,000
        entries takes the loader a minute, and every live intel update would otherwise cost each batch
        a full timeout. The contact index repairs exact-match intel of those entries when they are applied."""
        far = {part: off for part, off in behind.items() if off - applied.get(part, -1) > self.max_backlog}
        for part, off in far.items():
            self.given_up[part] = off
            BARRIER_SKIPS.labels(part).inc()
        if far and time.monotonic() - self._skip_logged > 30:
            self._skip_logged = time.monotonic()
            log.warning("reference barrier: the loader is more than %d records behind on %s; judging without "
                        "waiting (logged every 30 s at most)", self.max_backlog, ", ".join(sorted(far)))
        return bool(far)

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            from aiokafka.errors import KafkaError

            with contextlib.suppress(KafkaError, OSError):  # closing a client that lost the broker
                await consumer.stop()
