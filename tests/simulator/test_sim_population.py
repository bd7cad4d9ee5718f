import random
import re
import time
from collections import Counter

import pytest

from simulator.population import City, Population, mask
from streams.contracts.reference import AgeBand

E164_CN_MOBILE = re.compile(r"^\+861[3-9]\d{9}$")


def test_same_seed_same_city_and_people():
    a, b = Population.generate(500, 3), Population.generate(500, 3)
    assert list(a) == list(b)
    assert [c.stations for c in a.city.counties] == [c.stations for c in b.city.counties]


def test_another_seed_another_city():
    assert list(Population.generate(50, 3)) != list(Population.generate(50, 4))


def test_million_residents_are_lazy_and_indexable():
    started = time.perf_counter()
    population = Population.generate(1_000_000, 7)
    assert len(population) == 1_000_000
    assert not any(isinstance(v, (list, dict)) and len(v) > 1000 for v in vars(population).values())
    rng = random.Random(1)
    for i in [0, 999_999] + [rng.randrange(1_000_000) for _ in range(200)]:
        person = population[i]
        assert person == population.person(i)  # the same resident every time
        assert person.person_id == f"P{i:09d}"
    assert population[-1].index == 999_999
    with pytest.raises(IndexError):
        population[1_000_000]
    assert time.perf_counter() - started < 5


def test_iterating_is_fast():
    population = Population.generate(1_000_000, 7)
    started = time.perf_counter()
    count = sum(1 for _, person in zip(range(50_000), population))
    assert count == 50_000
    assert time.perf_counter() - started < 5  # ~5 µs a resident on a slow CI machine


def test_identifiers_are_unique_and_well_formed(population):
    phones = [p.phone for p in population]
    tokens = [a.token for p in population for a in p.accounts]
    assert len(set(phones)) == len(phones)
    assert len(set(tokens)) == len(tokens)
    assert all(E164_CN_MOBILE.match(phone) for phone in phones)
    # Virtual-operator and retired ranges belong to the intel lists and the registry's tombstones.
    assert not any(phone[3:6] in ("170", "171", "149") for phone in phones)
    assert all(re.fullmatch(r"acct_[0-9a-f]{20}", t) for t in tokens)
    assert all(1 <= len(p.accounts) <= 2 for p in population)


def test_every_resident_is_located_consistently(population):
    city = population.city
    for person in population:
        station = city.locate_cell(person.home_cell)
        assert station is not None and station.county == person.county
        assert person.station.startswith(person.county + "-PS")
        assert person.grid.startswith(person.station + "-G")
        for account in person.accounts:
            assert city.locate_branch(account.branch_code) == person.county


def test_age_bands_are_realistically_skewed(population):
    bands = Counter(p.age_band for p in population)
    elderly = bands[AgeBand.age_60_69] + bands[AgeBand.age_70_plus]
    assert 0.18 < elderly / len(population) < 0.36
    students = sum(p.student for p in population)
    assert 0.08 < students / len(population) < 0.2
    assert all(p.age_band in (AgeBand.under_18, AgeBand.age_18_25) for p in population if p.student)
    assert 0 < sum(not p.phone_registered for p in population) < 0.05 * len(population)


def test_city_has_counties_stations_grids():
    city = City(1)
    assert [c.code for c in city.counties] == [f"ZK{n:02d}" for n in range(1, 11)]
    assert all(4 <= len(c.stations) <= 9 for c in city.counties)
    assert all(st.grids and st.cells for c in city.counties for st in c.stations)


def test_mask_keeps_two_characters():
    assert mask("+8613800001234") == "************34"
