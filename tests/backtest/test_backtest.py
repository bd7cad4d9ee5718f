"""The backtest on a hand-made history: the replay raises what the stages raise, and the scores add up.

Pure and in process: a city of 60 residents, its registry and lists, three frauds told by the
simulator's typology builders and three case reports placed by hand, written as a history
file and replayed through the shipped rules and a stricter copy.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import chain

import pytest

from backtest.history import FraudTruth, HistoryHeader, HistoryWriter, read_header, read_records
from backtest.replay import MemoryReference, Replay, VersionRun
from backtest.score import WEEK_S, cases_recalled, score
from simulator import scenarios as sc
from simulator.population import Population
from simulator.reference import Intel, intel_updates, location_updates, registry_updates
from simulator.traffic import CN_TZ, benign_scenario
from streams.contracts import CaseReport
from streams.contracts.actions import Channel
from streams.contracts.alerts import Tier
from streams.contracts.common import Typology, UpdateOp
from streams.contracts.reference import IntelKind, IntelUpdate
from streams.routing import get_partners, get_routing
from streams.rules import Tiers, get_rules

START = datetime(2026, 11, 2, tzinfo=CN_TZ)
END = START + timedelta(days=7)
RESIDENTS = 60


def case_of(ids, person, occurred: datetime, filed: datetime, typology=Typology.impersonate_police) -> CaseReport:
    return CaseReport(event_id=ids("case"), event_time=filed, case_id=f"AJ-{person.index}", occurred_at=occurred,
                      typology=typology, county=person.county, station=person.station, victim_phone=person.phone,
                      loss_amount=Decimal(50_000))


def fraud(victim, intel, at, rng, ids) -> list:
    """An impersonation of the police (冒充公检法): a listed number, screen sharing, a listed mule. Its own
    random case report left out: the test places each case itself."""
    scenario = sc.impersonate_police(victim, intel, at, rng, ids)
    return [o for o in scenario.offers if not isinstance(o.value, CaseReport)]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Residents 0-2 defrauded, each with a case: 0 filed after the fraud (recalled), 1 filed before
    its fraud began (warned only after filing: not recalled), 2 a case with no fraud in the history
    (missed). Ordinary life for everyone else."""
    path = tmp_path_factory.mktemp("history") / "week.jsonl.gz"
    population, intel = Population(RESIDENTS, 3), Intel(80, 3)
    rng, ids = random.Random(3), sc.EventIds("t")
    writer = HistoryWriter(path)
    seeded = START - timedelta(hours=1)
    for update in chain(intel_updates(intel, seeded, "t"), location_updates(population.city, seeded, "t"),
                        registry_updates(population, seeded, "t")):
        writer.record("in_intel" if isinstance(update, IntelUpdate) else "in_registry", update)
    p0, p1, p2 = population[0], population[1], population[2]
    t0, t1 = START + timedelta(days=1), START + timedelta(days=3)
    offers = fraud(p0, intel, t0, rng, ids) + fraud(p1, intel, t1, rng, ids)
    offers += [sc.Offer("in_case", None, case_of(ids, p0, t0 + timedelta(minutes=12), t0 + timedelta(hours=5))),
               sc.Offer("in_case", None, case_of(ids, p1, t1 - timedelta(hours=3), t1 - timedelta(hours=2))),
               sc.Offer("in_case", None, case_of(ids, p2, t1, t1 + timedelta(hours=4)))]
    for n in range(300):
        offers += [o for o in benign_scenario(population, rng, ids, START + timedelta(minutes=30 * n)).offers
                   if o.value.event_time < END]
    for offer in sorted(offers, key=lambda o: o.value.event_time):
        writer.record(offer.topic_id, offer.value)
    for p, at in ((p0, t0), (p1, t1)):
        writer.truth(FraudTruth(p.person_id, "impersonate_police", at, True, False))
    writer.close(HistoryHeader(seed=3, residents=RESIDENTS, start=START, end=END))
    return path


def replay(path, *rules):
    runs = [VersionRun(r.version, r, get_routing(), get_partners()) for r in rules]
    return runs, Replay(runs, START, END).run(read_records(path), read_header(path).residents)


def stricter():
    """Cut-offs no evidence short of a whole fraud story reaches. (Raising them a little is not
    stricter in contacts: an alert then climbs low -> medium -> high, and each step adds its
    tier's actions, where the shipped rules go to high at once; the week's backtest shows it.)"""
    return get_rules().model_copy(update={"version": "strict", "tiers": Tiers(low=120, medium=150, high=180)})


def test_the_header_counts_what_the_file_holds(history):
    header = read_header(history)
    lines = list(read_records(history))
    assert header.records == sum(1 for topic, _ in lines if topic != "truth") == sum(header.by_topic.values())
    assert header.frauds == 2 and header.by_topic["in_case"] == 3


def test_a_case_warned_before_filing_is_recalled_and_one_warned_after_is_not(history):
    (run,), replayed = replay(history, get_rules())
    scores = score(run, replayed)
    assert replayed.refused == 0 and scores.cases == 3
    # Resident 0: a listed number, screen sharing while banking, then a transfer to a listed mule.
    assert cases_recalled(scores, Tier.funds_warning) == ["AJ-0"]
    assert cases_recalled(scores, Tier.high) == ["AJ-0"]
    assert scores.per_case == {"AJ-0": Tier.funds_warning, "AJ-1": None, "AJ-2": None}
    assert scores.recall[Tier.low] == scores.recall[Tier.funds_warning] == pytest.approx(1 / 3)
    assert scores.in_time == pytest.approx(1 / 3)  # resident 0's first alert came before the 12th minute
    assert len(scores.lead_minutes) == 1 and 0 < scores.lead_minutes[0] <= 12
    assert scores.to_filing_minutes == [pytest.approx(scores.lead_minutes[0] + 5 * 60 - 12)]  # filed 5 h after t0
    # Both frauds were alerted (ground truth), whatever the cases say.
    assert scores.victims_recall == 1.0


def test_load_is_per_10k_residents_and_week(history):
    (run,), replayed = replay(history, get_rules())
    scores = score(run, replayed)
    per_10k = 10_000 / RESIDENTS * WEEK_S / (END - START).total_seconds()
    assert run.actions[Channel.police_visit] >= 2  # a high alert and a funds warning each: two frauds
    assert scores.actions_per_10k[Channel.police_visit] == pytest.approx(run.actions[Channel.police_visit] * per_10k)
    contacts = sum(n for ch, n in run.actions.items() if ch is not Channel.line_suspension)
    assert scores.contacts_per_10k == pytest.approx(contacts * per_10k)
    assert scores.alerted_per_10k == pytest.approx(len({a.person_id for a in run.alerts}) * per_10k)
    assert sum(scores.alerts_per_10k.values()) == pytest.approx(len(run.alerts) * per_10k)


def test_each_alert_tier_and_channel_is_sent_once(history):
    (run,), _ = replay(history, get_rules())
    planned_slots = len(run.slots)
    assert planned_slots and sum(n for n in run.actions.values()) == planned_slots


def test_a_stricter_version_contacts_fewer_residents_on_the_same_history(history):
    (shipped, strict), replayed = replay(history, get_rules(), stricter())
    a, b = score(shipped, replayed), score(strict, replayed)
    assert b.contacts_per_10k < a.contacts_per_10k
    assert sum(b.alerts_per_10k.values()) < sum(a.alerts_per_10k.values())
    # Replayed side by side, each version keeps its own states: the shipped one scores as it does alone.
    (alone,), again = replay(history, get_rules())
    assert score(alone, again).per_case == a.per_case and alone.actions == shipped.actions


def test_the_reference_keeps_the_newest_update_and_a_delete_keeps_older_ones_out():
    ref, at = MemoryReference(), START

    def listed(minutes, op=UpdateOp.upsert, confidence=0.9):
        return IntelUpdate(event_id=f"i{minutes}{op.value}", event_time=at + timedelta(minutes=minutes),
                           kind=IntelKind.fraud_number, value="+8617012345678", op=op,
                           typology=Typology.fake_loan, confidence=confidence, source="carrier")

    now_ms = int((at + timedelta(hours=1)).timestamp() * 1000)
    assert ref.apply(listed(10, confidence=0.9), now_ms)
    assert ref.apply(listed(5, confidence=0.5), now_ms) is None  # older: ignored
    (record,) = ref.records.values()
    assert record.confidence == 0.9
    assert ref.apply(listed(20, UpdateOp.delete), now_ms) and not ref.records
    assert ref.apply(listed(15), now_ms) is None  # older than the delete: stays deleted
    assert ref.apply(listed(25), now_ms) and ref.records


def test_a_slice_scores_only_its_own_cases_and_divides_by_its_own_length(history):
    runs = [VersionRun("shipped", get_rules(), get_routing(), get_partners())]
    until = START + timedelta(days=2)  # resident 0's fraud and case only
    replayed = Replay(runs, START, until).run(read_records(history), RESIDENTS)
    scores = score(runs[0], replayed)
    assert (scores.cases, scores.per_case) == (1, {"AJ-0": Tier.funds_warning})
    assert {t.person_id for t in replayed.truths} == {"P000000000"}
    per_10k = 10_000 / RESIDENTS * WEEK_S / (2 * 86400)
    assert scores.contacts_per_10k == pytest.approx(
        sum(n for ch, n in runs[0].actions.items() if ch is not Channel.line_suspension) * per_10k)
