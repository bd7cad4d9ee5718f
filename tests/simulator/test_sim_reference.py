from collections import Counter

import msgspec

from sim_helpers import NOW
from simulator.population import Population
from simulator.reference import (
    FRAUD_TYPOLOGIES,
    Intel,
    intel_updates,
    location_updates,
    registry_updates,
    retired_numbers,
)
from streams.contracts.common import UpdateOp
from streams.contracts.reference import IdentifierKind, IntelKind, IntelUpdate, RegistryUpdate


def roundtrip(message, contract):
    decoded = msgspec.json.decode(msgspec.json.encode(message), type=contract)
    assert decoded == message
    return decoded


def test_intel_is_deterministic_and_sized():
    a, b = Intel(500, 3), Intel(500, 3)
    assert a.entries == b.entries
    assert intel_updates(a, NOW, "x") == intel_updates(b, NOW, "x")
    assert Intel(500, 4).entries != a.entries
    assert 500 <= len(a) <= 520  # every list gets a minimum per typology
    assert 100_000 <= len(Intel(100_000, 3)) <= 100_100


def test_intel_covers_every_list_and_typology(intel):
    kinds = Counter(e.kind for e in intel.entries)
    assert set(kinds) == set(IntelKind)
    for typology in FRAUD_TYPOLOGIES:
        assert any(e.live and e.kind is IntelKind.fraud_number and e.typology is typology for e in intel.entries)
        assert any(e.live and e.kind is IntelKind.mule_account and e.typology is typology for e in intel.entries)
    values = [e.value for e in intel.entries]
    assert len(values) == len(set(values))  # a tombstone must never delete another live entry


def test_intel_updates_validate_and_include_edge_cases(intel):
    updates = intel_updates(intel, NOW, "x")
    for update in updates:
        roundtrip(update, IntelUpdate)
    deletes = [u for u in updates if u.op is UpdateOp.delete]
    assert deletes and all(not e.live for e in intel.entries if e.value in {d.value for d in deletes})
    assert any(u.expires_at and u.expires_at > NOW for u in updates)
    assert any(u.expires_at and u.expires_at < NOW for u in updates)  # already expired on arrival
    assert len({u.event_id for u in updates}) == len(updates)


def test_fraud_numbers_look_like_their_class(intel):
    prefixes = ("+63", "+855", "+95", "+852", "+86170", "+86171", "+8610", "+8621")
    for entry in intel.entries:
        if entry.kind in (IntelKind.fraud_number, IntelKind.number_range):
            assert entry.value.startswith(prefixes), entry
            assert entry.counterpart_type is not None


def test_registry_updates_cover_every_resident(population):
    updates = list(registry_updates(population, NOW, "x"))
    for update in updates:
        roundtrip(update, RegistryUpdate)
    phones = {u.identifier for u in updates if u.identifier_kind is IdentifierKind.phone and u.op is UpdateOp.upsert}
    accounts = {u.identifier for u in updates if u.identifier_kind is IdentifierKind.account}
    for person in population:
        assert (person.phone in phones) == person.phone_registered
        assert {a.token for a in person.accounts} <= accounts
    retired = set(retired_numbers(population))
    tombstones = [u for u in updates if u.op is UpdateOp.delete]
    assert {u.identifier for u in tombstones} == retired
    assert len({u.event_id for u in updates}) == len(updates)


def test_registry_is_lazy_for_a_million():
    updates = registry_updates(Population.generate(1_000_000, 7), NOW, "x")
    first = [next(updates) for _ in range(1000)]
    assert first[0].person_id == "P000000000"


def test_location_updates_locate_every_cell_and_branch(population):
    city = population.city
    updates = location_updates(city, NOW, "x")
    for update in updates:
        roundtrip(update, RegistryUpdate)
    cells = {u.identifier: u for u in updates if u.identifier_kind is IdentifierKind.cell}
    branches = {u.identifier: u for u in updates if u.identifier_kind is IdentifierKind.branch}
    assert set(cells) == set(city.cell_table) and set(branches) == set(city.branch_table)
    assert all(u.station == city.cell_table[c].code and u.county == city.cell_table[c].county for c, u in cells.items())
    stations = {st.code: county.code for county in city.counties for st in county.stations}
    assert all(u.county == city.branch_table[b] == stations[u.station] for b, u in branches.items())
    # Every home cell and account branch of the residents is covered: unregistered ones can be located.
    assert {p.home_cell for p in population} <= set(cells)
    assert {a.branch_code for p in population for a in p.accounts} <= set(branches)
    assert len({u.event_id for u in updates}) == len(updates)
