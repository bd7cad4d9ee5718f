"""A synthetic city: counties, police stations, grids, cells, bank branches and residents.

Everything is invented from a seed; no real person, number or account is used. The
geography is small and built eagerly with random.Random(seed). Residents are not
stored: person i is derived on demand from a keyed hash of (seed, i), so a registry of
a million residents costs no memory and any resident can be looked up in O(1).
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from streams.contracts.reference import AgeBand
from streams.contracts.signals import Carrier
from streams.masking import mask  # noqa: F401 (re-exported: the simulator's logs mask with it)

# Synthetic counties of a Zhoukou-like prefecture (pinyin names; codes are invented).
COUNTY_NAMES = (
    "Chuanhui", "Huaiyang", "Xiangcheng", "Fugou", "Xihua",
    "Shangshui", "Taikang", "Luyi", "Dancheng", "Shenqiu",
)
# Banks that hold residents' accounts (ZKRCB: the local rural commercial bank).
RESIDENT_BANKS = ("ICBC", "ABC", "BOC", "CCB", "PSBC", "ZKRCB")

# Mobile prefixes by carrier. 170/171 (virtual operators) and 149 are deliberately
# absent: fraud lists and retired numbers use them, so a resident can never collide.
CARRIER_PREFIXES: dict[Carrier, tuple[str, ...]] = {
    Carrier.china_mobile: ("134", "135", "136", "137", "138", "139", "150", "151", "152",
                           "157", "158", "159", "182", "183", "187", "188", "198"),
    Carrier.china_unicom: ("130", "131", "132", "155", "156", "166", "175", "176", "185", "186"),
    Carrier.china_telecom: ("133", "153", "173", "177", "180", "181", "189", "199"),
    Carrier.china_broadnet: ("192",),
}
_PREFIXES = tuple((p, c) for c, ps in CARRIER_PREFIXES.items() for p in ps)

# Age bands in percent: many left-behind elderly (留守老人) and school-age residents.
AGE_WEIGHTS: tuple[tuple[AgeBand, int], ...] = (
    (AgeBand.under_18, 9), (AgeBand.age_18_25, 12), (AgeBand.age_26_40, 22),
    (AgeBand.age_41_59, 30), (AgeBand.age_60_69, 16), (AgeBand.age_70_plus, 11),
)
STUDENT_PERCENT = {AgeBand.under_18: 92, AgeBand.age_18_25: 45}
UNREGISTERED_PER_MILLE = 15  # phones missing from the registry: located by cell only
MAX_PERSONS = 10**8  # the phone suffix permutation is a bijection on 8 digits
_PHONE_STRIDE = 7_368_787  # odd and not a multiple of 5: coprime to 10**8
_DRAWS = struct.Struct("<13H")  # 16-bit draws from the person's hash (modulo bias < 0.2 %)


@dataclass(frozen=True, slots=True)
class Station:
    code: str  # "ZK01-PS03"
    county: str
    grids: tuple[str, ...]
    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class County:
    code: str  # "ZK01"
    name: str
    weight: int  # relative population
    stations: tuple[Station, ...]
    branches: dict[str, tuple[str, ...]]  # bank -> branch codes in this county


class Account(NamedTuple):
    token: str
    bank: str
    branch_code: str


class Person(NamedTuple):
    index: int
    person_id: str
    phone: str  # E.164
    carrier: Carrier
    accounts: tuple[Account, ...]
    county: str
    station: str
    grid: str
    home_cell: str
    age_band: AgeBand
    student: bool
    phone_registered: bool  # False: the carrier registry does not know this number yet

    @property
    def elderly(self) -> bool:
        return self.age_band in (AgeBand.age_60_69, AgeBand.age_70_plus)


class City:
    """The geography, from random.Random(seed); small enough to hold in full."""

    def __init__(self, seed: int, n_counties: int = len(COUNTY_NAMES)) -> None:
        rng = random.Random(f"city:{seed}")
        counties = []
        for c, name in enumerate(COUNTY_NAMES[:n_counties], start=1):
            code = f"ZK{c:02d}"
            stations, cell_no = [], 0
            for s in range(1, rng.randint(4, 9) + 1):
                st = f"{code}-PS{s:02d}"
                grids = tuple(f"{st}-G{g:02d}" for g in range(1, rng.randint(6, 15) + 1))
                n_cells = rng.randint(3, 6)
                cells = tuple(f"{code}-C{cell_no + k:04d}" for k in range(1, n_cells + 1))
                cell_no += n_cells
                stations.append(Station(st, code, grids, cells))
            branches = {b: tuple(f"{b}-{code}-{n:02d}" for n in range(1, rng.randint(1, 3) + 1))
                        for b in RESIDENT_BANKS}
            # Chuanhui (the city district) is the most populous.
            weight = rng.randint(60, 110) + (60 if c == 1 else 0)
            counties.append(County(code, name, weight, tuple(stations), branches))
        self.counties: tuple[County, ...] = tuple(counties)
        # 4096 slots shared out by weight: a county is one table lookup per resident.
        total = sum(c.weight for c in self.counties)
        slots: list[County] = []
        for county in self.counties:
            slots += [county] * round(4096 * county.weight / total)
        self.county_slots: tuple[County, ...] = tuple((slots + [self.counties[0]] * 4096)[:4096])

    @cached_property
    def cell_table(self) -> dict[str, Station]:
        """cell id -> station; how an unregistered number is located by its serving cell."""
        return {cell: st for county in self.counties for st in county.stations for cell in st.cells}

    @cached_property
    def branch_table(self) -> dict[str, str]:
        """branch code -> county; how an unregistered account is located by its branch."""
        return {b: county.code for county in self.counties for bs in county.branches.values() for b in bs}

    def locate_cell(self, cell_id: str) -> Station | None:
        return self.cell_table.get(cell_id)

    def locate_branch(self, branch_code: str) -> str | None:
        return self.branch_table.get(branch_code)

    @cached_property
    def all_cells(self) -> tuple[str, ...]:
        return tuple(self.cell_table)


class Population:
    """n residents of a City, each derived on demand from (seed, index)."""

    def __init__(self, n_persons: int, seed: int, city: City | None = None) -> None:
        if not 0 < n_persons <= MAX_PERSONS:
            raise ValueError(f"n_persons must be in 1..{MAX_PERSONS}")
        self.n_persons = n_persons
        self.seed = seed
        self.city = city or City(seed)
        self._key = hashlib.blake2b(f"population:{seed}".encode(), digest_size=32).digest()
        self._phone_offset = random.Random(f"phones:{seed}").randrange(10**8)
        self._county_by_draw = self.city.county_slots

    @classmethod
    def generate(cls, n_persons: int, seed: int) -> Population:
        return cls(n_persons, seed)

    def __len__(self) -> int:
        return self.n_persons

    def __iter__(self) -> Iterator[Person]:
        return (self.person(i) for i in range(self.n_persons))

    def __getitem__(self, index: int) -> Person:
        if index < 0:
            index += self.n_persons
        if not 0 <= index < self.n_persons:
            raise IndexError(index)
        return self.person(index)

    def random_person(self, rng: random.Random) -> Person:
        return self.person(rng.randrange(self.n_persons))

    def person(self, i: int) -> Person:
        # One keyed hash gives 512 bits: 80+80 for account tokens, 16-bit draws for the rest.
        # (Plain tuples and table lookups: iterating a million residents must stay fast.)
        digest = hashlib.blake2b(i.to_bytes(8, "little"), key=self._key, digest_size=64).digest()
        d = _DRAWS.unpack_from(digest, 20)
        prefix, carrier = _PREFIXES[d[0] % len(_PREFIXES)]
        county = self._county_by_draw[d[1] & 4095]
        station = county.stations[d[2] % len(county.stations)]
        age_band = _AGE_BY_PERCENT[d[3] % 100]
        branches = county.branches
        bank = _pick(RESIDENT_BANKS, d[6])
        accounts: tuple[Account, ...] = (Account("acct_" + digest[:10].hex(), bank, _pick(branches[bank], d[8])),)
        if age_band is not AgeBand.under_18 and d[4] % 100 >= 55:  # 45 % of adults have a second bank
            bank = _pick(RESIDENT_BANKS, d[7])
            accounts += (Account("acct_" + digest[10:20].hex(), bank, _pick(branches[bank], d[9])),)
        return Person(
            i,
            f"P{i:09d}",
            f"+86{prefix}{(i * _PHONE_STRIDE + self._phone_offset) % 10**8:08d}",
            carrier,
            accounts,
            county.code,
            station.code,
            _pick(station.grids, d[10]),
            _pick(station.cells, d[11]),
            age_band,
            d[5] % 100 < STUDENT_PERCENT.get(age_band, 0),
            d[12] % 1000 >= UNREGISTERED_PER_MILLE,
        )


def _pick(options, draw: int):
    return options[draw % len(options)]


_AGE_BY_PERCENT: tuple[AgeBand, ...] = tuple(band for band, weight in AGE_WEIGHTS for _ in range(weight))
