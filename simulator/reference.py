"""Reference data for the synthetic city: the registry and the intelligence lists.

Both become ordinary RegistryUpdate / IntelUpdate messages on the update topics, so the
platform loads them exactly as it would load a partner's feed. Every value is invented:
fraud numbers use foreign, VoIP-gateway and virtual-operator (170/171) ranges that no
resident of simulator.population can have, phishing domains end in the reserved
`.test` TLD, and account tokens come from a separate hash namespace.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulator.population import City, Population
from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import IdentifierKind, IntelKind, IntelUpdate, RegistryUpdate
from streams.contracts.signals import CounterpartType

T = Typology
CT = CounterpartType
FRAUD_TYPOLOGIES = (T.impersonate_police, T.investment, T.order_brushing, T.fake_loan, T.fake_customer_service, T.romance)

# Share of the intel entries per list, and the typologies each list is known for.
KIND_SHARE = {
    IntelKind.fraud_number: 0.50,
    IntelKind.mule_account: 0.25,
    IntelKind.phishing_url: 0.09,
    IntelKind.phishing_domain: 0.05,
    IntelKind.fraud_apk: 0.08,
    IntelKind.number_range: 0.03,
}
KIND_TYPOLOGIES = {
    IntelKind.fraud_number: FRAUD_TYPOLOGIES,
    IntelKind.mule_account: FRAUD_TYPOLOGIES,
    IntelKind.phishing_url: (T.investment, T.order_brushing, T.fake_loan, T.romance),
    IntelKind.phishing_domain: (T.investment, T.order_brushing, T.fake_loan, T.romance),
    IntelKind.fraud_apk: (T.investment, T.fake_loan, T.fake_customer_service, T.romance),
    IntelKind.number_range: (T.fake_loan, T.order_brushing, T.impersonate_police, T.investment),
}
# Which kind of number each typology calls from.
NUMBER_TYPES = {
    T.impersonate_police: (CT.international, CT.voip_gateway),
    T.investment: (CT.international, CT.virtual_operator),
    T.order_brushing: (CT.virtual_operator, CT.international),
    T.fake_loan: (CT.virtual_operator,),
    T.fake_customer_service: (CT.voip_gateway, CT.international, CT.virtual_operator),
    T.romance: (CT.international,),
}
# International fraud numbers: (country prefix, leading digits, digits after them).
FOREIGN_PLANS = (("+63", "9", 9), ("+855", "88", 7), ("+855", "97", 7), ("+95", "9", 8), ("+852", "5", 7), ("+852", "6", 7))
VOIP_PLANS = (("+86", "10", 8), ("+86", "21", 8))  # gateway-spoofed "Beijing/Shanghai" landlines
VIRTUAL_PLANS = (("+86", "170", 8), ("+86", "171", 8))
RANGE_PLANS = {
    CT.virtual_operator: VIRTUAL_PLANS,
    CT.international: FOREIGN_PLANS,
}
MULE_BANKS = ("ICBC", "ABC", "BOC", "CCB", "PSBC", "CMB", "CITIC", "SPDB", "CIB", "PAB", "HXB")
SOURCES = ("mps_list", "province_centre", "carrier", "bank", "case_review", "app_report")
PHISH_WORDS = ("licai", "touzi", "fanli", "daikuan", "kefu", "tuikuan", "jinrong", "gupiao", "shuadan", "weixiu")
PHISH_TLDS = ("top.test", "xyz.test", "vip.test", "cc.test")


@dataclass(frozen=True, slots=True)
class IntelEntry:
    kind: IntelKind
    value: str
    typology: Typology
    confidence: float
    source: str
    ttl_days: int | None  # None: no expiry; negative: already expired when seeded
    tombstoned: bool  # seeded, then deleted
    counterpart_type: CounterpartType | None = None  # numbers and ranges: how a carrier classes them
    bank: str | None = None  # mule accounts: the bank that holds them

    @property
    def live(self) -> bool:
        """Counts as intelligence once seeded: scenarios only use live entries."""
        return not self.tombstoned and (self.ttl_days is None or self.ttl_days > 0)


class Intel:
    """The intelligence lists, deterministic from (n_entries, seed)."""

    def __init__(self, n_entries: int, seed: int) -> None:
        self.seed = seed
        rng = random.Random(f"intel:{seed}")
        self.entries: list[IntelEntry] = []
        seen: set[str] = set()
        for kind, share in KIND_SHARE.items():
            typologies = KIND_TYPOLOGIES[kind]
            # Every typology gets live entries even in a tiny list.
            count = max(round(n_entries * share), 3 * len(typologies))
            for n in range(count):
                typology = typologies[n % len(typologies)]
                self.entries.append(_entry(kind, typology, n, count, rng, seen))
        self._live: dict[tuple[IntelKind, Typology], list[IntelEntry]] = {}
        for entry in self.entries:
            if entry.live:
                self._live.setdefault((entry.kind, entry.typology), []).append(entry)
        self.values: dict[IntelKind, frozenset[str]] = {
            kind: frozenset(e.value for e in self.entries if e.kind is kind) for kind in IntelKind
        }

    def __len__(self) -> int:
        return len(self.entries)

    def pick(self, kind: IntelKind, typology: Typology, rng: random.Random,
             counterpart_types: tuple[CounterpartType, ...] | None = None) -> IntelEntry:
        """A live entry of this list and typology (of one of these number types, if given)."""
        options = self._live.get((kind, typology)) or [e for k, es in self._live.items() if k[0] is kind for e in es]
        if counterpart_types:
            options = [e for e in options if e.counterpart_type in counterpart_types] or options
        return options[rng.randrange(len(options))]

    def number_in_range(self, typology: Typology, rng: random.Random) -> tuple[str, CounterpartType]:
        """An unlisted number inside a live listed range: only the range list can catch it."""
        entry = self.pick(IntelKind.number_range, typology, rng)
        full_length = next(len(c + lead) + rest for c, lead, rest in RANGE_PLANS[entry.counterpart_type]
                           if entry.value.startswith(c + lead))
        return entry.value + _digits(rng, full_length - len(entry.value)), entry.counterpart_type

    def is_listed_number(self, number: str) -> bool:
        if number in self.values[IntelKind.fraud_number]:
            return True
        return any(number.startswith(prefix) for prefix in self.values[IntelKind.number_range])

    def is_listed_account(self, token: str) -> bool:
        return token in self.values[IntelKind.mule_account]


def _entry(kind: IntelKind, typology: Typology, n: int, count: int, rng: random.Random, seen: set[str]) -> IntelEntry:
    counterpart_type, bank = None, None
    while True:
        if kind is IntelKind.fraud_number:
            counterpart_type = rng.choice(NUMBER_TYPES[typology])
            value = _number(counterpart_type, rng)
        elif kind is IntelKind.number_range:
            counterpart_type = CT.virtual_operator if typology in (T.fake_loan, T.order_brushing) else CT.international
            country, lead, _ = rng.choice(RANGE_PLANS[counterpart_type])
            value = country + lead + _digits(rng, 3)
        elif kind is IntelKind.mule_account:
            bank = rng.choice(MULE_BANKS)
            value = "acct_" + hashlib.blake2b(rng.randbytes(16), digest_size=10).hexdigest()
        elif kind is IntelKind.phishing_domain:
            value = _domain(rng)
        elif kind is IntelKind.phishing_url:
            value = f"https://{_domain(rng)}/{rng.choice(('login', 'app', 'h5', 'vip'))}/{_digits(rng, 6)}"
        else:
            value = hashlib.sha256(rng.randbytes(32)).hexdigest()
        if value not in seen:  # a duplicate would let a tombstone delete a live entry
            seen.add(value)
            break
    # The last entries of each list are the edge cases: tombstones, then expired ones.
    tombstoned = n >= count - max(1, count // 100)
    expired = not tombstoned and n >= count - 2 * max(1, count // 100)
    ttl = -rng.randint(1, 30) if expired else (rng.randint(30, 180) if rng.random() < 0.2 else None)
    return IntelEntry(kind, value, typology, round(rng.uniform(0.6, 1.0), 2), rng.choice(SOURCES), ttl, tombstoned,
                      counterpart_type, bank)


def unlisted_number(intel: Intel, counterpart_type: CounterpartType, rng: random.Random) -> str:
    """A fraud-like number of this type that no list holds, not even as a range: one to list late."""
    while True:
        number = _number(counterpart_type, rng)
        if not intel.is_listed_number(number):
            return number


def unlisted_account(intel: Intel, rng: random.Random) -> str:
    """A mule-like account token that no list holds yet."""
    while True:
        token = "acct_" + hashlib.blake2b(rng.randbytes(16), digest_size=10).hexdigest()
        if not intel.is_listed_account(token):
            return token


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _number(counterpart_type: CounterpartType, rng: random.Random) -> str:
    plans = {CT.international: FOREIGN_PLANS, CT.voip_gateway: VOIP_PLANS, CT.virtual_operator: VIRTUAL_PLANS}
    country, lead, rest = rng.choice(plans[counterpart_type])
    return country + lead + _digits(rng, rest)


def _domain(rng: random.Random) -> str:
    return f"{rng.choice(PHISH_WORDS)}-{rng.randbytes(3).hex()}.{rng.choice(PHISH_TLDS)}"


def intel_updates(intel: Intel, now: datetime, id_prefix: str) -> list[IntelUpdate]:
    """Every entry as an upsert, then a tombstone for each tombstoned entry."""
    updates = [
        IntelUpdate(
            event_id=f"{id_prefix}-intel-{n}",
            event_time=now,
            kind=e.kind,
            value=e.value,
            typology=e.typology,
            confidence=e.confidence,
            source=e.source,
            expires_at=None if e.ttl_days is None else now + timedelta(days=e.ttl_days),
        )
        for n, e in enumerate(intel.entries)
    ]
    updates += [
        IntelUpdate(event_id=f"{id_prefix}-intel-del-{n}", event_time=now, kind=e.kind, value=e.value,
                    op=UpdateOp.delete, typology=e.typology, source=e.source)
        for n, e in enumerate(intel.entries)
        if e.tombstoned
    ]
    return updates


def location_updates(city: City, now: datetime, id_prefix: str) -> list[RegistryUpdate]:
    """Every cell and bank branch with its station: how a signal of an unregistered resident is located."""
    updates = [
        RegistryUpdate(event_id=f"{id_prefix}-loc-{cell}", event_time=now, identifier_kind=IdentifierKind.cell,
                       identifier=cell, county=station.county, station=station.code)
        for cell, station in city.cell_table.items()
    ]
    counties = {county.code: county for county in city.counties}
    for branch, county_code in city.branch_table.items():
        # Branches sit in the county seat's first stations: branch n of a bank in station n.
        stations = counties[county_code].stations
        station = stations[(int(branch.rsplit("-", 1)[1]) - 1) % len(stations)]
        updates.append(RegistryUpdate(event_id=f"{id_prefix}-loc-{branch}", event_time=now,
                                      identifier_kind=IdentifierKind.branch, identifier=branch,
                                      county=county_code, station=station.code))
    return updates


RETIRED_PER_MILLE = 2  # numbers cancelled (销号) after registration: an upsert, then a tombstone


def registry_updates(population: Population, now: datetime, id_prefix: str) -> Iterator[RegistryUpdate]:
    """Phones and accounts of every resident (lazily), then retired numbers and their tombstones.

    Unregistered phones are left out on purpose: their traffic must be located by cell.
    """
    for p in population:
        common = dict(event_time=now, person_id=p.person_id, county=p.county, station=p.station,
                      grid=p.grid, age_band=p.age_band, student=p.student)
        if p.phone_registered:
            yield RegistryUpdate(event_id=f"{id_prefix}-reg-{p.index}-p", identifier_kind=IdentifierKind.phone,
                                 identifier=p.phone, **common)
        for k, account in enumerate(p.accounts):
            yield RegistryUpdate(event_id=f"{id_prefix}-reg-{p.index}-a{k}", identifier_kind=IdentifierKind.account,
                                 identifier=account.token, **common)
    for n, phone in enumerate(retired_numbers(population)):
        # 149 is no resident's prefix (see simulator.population): a retired number never collides.
        p = population[n % len(population)]
        yield RegistryUpdate(event_id=f"{id_prefix}-reg-retired-{n}", event_time=now,
                             identifier_kind=IdentifierKind.phone, identifier=phone, person_id=p.person_id,
                             county=p.county, station=p.station, grid=p.grid)
        yield RegistryUpdate(event_id=f"{id_prefix}-reg-retired-{n}-del", event_time=now,
                             identifier_kind=IdentifierKind.phone, identifier=phone, op=UpdateOp.delete)


def retired_numbers(population: Population) -> list[str]:
    count = max(2, len(population) * RETIRED_PER_MILLE // 1000)
    return [f"+86149{n * 7_919 % 10**8:08d}" for n in range(count)]
