"""Record a synthetic week to a file, in simulated time: what the backtest replays (backtest/history.py).

The same city, reference data, ordinary life and fraud typologies as the live simulator
(simulator.traffic), but nothing is sent and nothing waits: every scenario keeps its real
event times, spread over the days, and the file holds them in event-time order. The
registry and intelligence lists come first, stamped an hour before the week; a share of
the frauds use a number or mule account listed only after the contact (simulator.late_intel),
hours later in simulated time. Case reports (预警成案: about one fraud in five, as in
simulator.scenarios) are the backtest's positives; the ground truth of every fraud is kept too.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta
from itertools import chain
from pathlib import Path

from backtest.history import FraudTruth, HistoryHeader, HistoryWriter
from simulator import late_intel
from simulator import scenarios as sc
from simulator.population import Population
from simulator.reference import FRAUD_TYPOLOGIES, Intel, intel_updates, location_updates, registry_updates
from simulator.scenarios import EventIds, Offer
from simulator.traffic import CN_TZ, benign_scenario, pick_victim

log = logging.getLogger(__name__)

WEEK_START = datetime(2026, 11, 2, tzinfo=CN_TZ)  # a Monday; fixed, so a recording is the same on every machine
BENIGN_OFFERS_PER_SCENARIO = 1.5  # resident calls and SMS report both sides (simulator.traffic measured it)


def record_week(path: Path, *, residents: int = 20_000, days: float = 7.0, seed: int = 7, intel_entries: int = 2_000,
                benign_per_resident_day: float = 3.0, frauds_per_10k_week: float = 500.0,
                late_listing_share: float = 0.25, late_listing_delay_s: tuple[float, float] = (60.0, 6 * 3600.0),
                start: datetime = WEEK_START) -> HistoryHeader:
    """Write `days` of synthetic input traffic to `path`; returns the header (counts included).

    benign_per_resident_day: input records of ordinary life per resident and day.
    frauds_per_10k_week: fraud scenarios started per 10,000 residents and week (each a victim).
    late_listing_share: share of frauds whose number or mule is listed after the contact, by
    late_listing_delay_s of simulated time (reached back to: 回溯预警).
    """
    started = time.monotonic()
    population = Population.generate(residents, seed)
    intel = Intel(intel_entries, seed)
    rng = random.Random(f"recording:{seed}")
    ids = EventIds(f"w{seed}")
    end = start + timedelta(days=days)
    writer = HistoryWriter(path)
    seeded_at = start - timedelta(hours=1)
    for update in intel_updates(intel, seeded_at, ids.namespace):
        writer.record("in_intel", update)
    for update in chain(location_updates(population.city, seeded_at, ids.namespace),
                        registry_updates(population, seeded_at, ids.namespace)):
        writer.record("in_registry", update)

    # Frauds first (few): their events are bucketed by day and merged with each day's ordinary life.
    day_s = 86400.0
    n_days = int(-(-days // 1))
    fraud_days: list[list[Offer]] = [[] for _ in range(n_days)]
    n_frauds = round(residents / 10_000 * frauds_per_10k_week * days / 7)
    for _ in range(n_frauds):
        typology = rng.choice(FRAUD_TYPOLOGIES)
        at = start + timedelta(seconds=rng.uniform(0, days * day_s))
        scenario = sc.FRAUD_BUILDERS[typology](pick_victim(population, rng, typology), intel, at, rng, ids)
        late = rng.random() < late_listing_share
        if late:
            scenario = late_intel.listed_late(scenario, intel, rng, ids, late_listing_delay_s)
        writer.truth(FraudTruth(scenario.person_id, typology.value, at, scenario.expect_funds_warning,
                                bool(scenario.listings)))
        for offer in chain(scenario.offers, (listing.offer for listing in scenario.listings)):
            offset = (offer.value.event_time - start).total_seconds()
            if offer.value.event_time < end:  # a story longer than the week is cut where the week ends
                fraud_days[int(offset // day_s)].append(offer)

    per_day = residents * benign_per_resident_day / BENIGN_OFFERS_PER_SCENARIO
    for day in range(n_days):
        day_start = start + timedelta(days=day)
        span_s = min(day_s, (end - day_start).total_seconds())
        offers = fraud_days[day]
        for _ in range(round(per_day * span_s / day_s)):
            at = day_start + timedelta(seconds=rng.uniform(0, span_s))
            offers.extend(benign_scenario(population, rng, ids, at).offers)
        offers.sort(key=lambda o: o.value.event_time)
        for offer in offers:
            writer.record(offer.topic_id, offer.value)
        log.info("recording: day %d written (%d records)", day + 1, len(offers))
    header = writer.close(HistoryHeader(
        seed=seed, residents=residents, start=start, end=end,
        note=f"{benign_per_resident_day:g} benign records per resident and day, {frauds_per_10k_week:g} frauds per "
             f"10,000 residents and week, {late_listing_share:.0%} of them listed late"))
    log.info("recording: %d records, %d frauds in %.1f s -> %s", header.records, header.frauds,
             time.monotonic() - started, path)
    return header

