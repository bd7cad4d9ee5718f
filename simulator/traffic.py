"""The traffic simulator: seeds reference data, then offers a city's signals at a steady rate.

Everything goes through the platform's real input topics, never around it: the registry
and intelligence lists as update messages, then mostly ordinary carrier and bank
traffic, a few percent fraud scenarios and a small share of malformed messages. Fraud
scenarios are replayed with their gaps compressed (a 13-minute wait becomes a few
seconds) and every event is stamped with the wall-clock time it is sent, so the
platform's time windows see the story as it would unfold, only faster. In `antifraud up`
a share of the frauds (ANTIFRAUD_SIMULATOR_LATE_LISTING_SHARE) use a number or mule account
that is listed only seconds to minutes after the contact (simulator.late_intel): the
platform finds those residents by reaching back (回溯预警).
"""

from __future__ import annotations

import heapq
import logging
import random
import signal
import threading
import time
from collections import Counter as Tally
from collections import deque
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import chain

import msgspec
from confluent_kafka import Producer
from prometheus_client import Counter

from simulator import late_intel
from simulator import scenarios as sc
from simulator.malformed import malformed
from simulator.population import Person, Population
from simulator.reference import FRAUD_TYPOLOGIES, Intel, intel_updates, location_updates, registry_updates
from simulator.scenarios import EventIds, Offer, Scenario
from streams.catalog import get_catalog
from streams.contracts.cases import CaseReport
from streams.contracts.signals import ReportKind
from streams.kafka import producer_config
from streams.settings import Settings

log = logging.getLogger(__name__)

OFFERED = Counter(
    "antifraud_simulator_offered_total",
    "Messages the traffic simulator delivered to an input topic, by topic id and kind "
    "(reference, benign, fraud, malformed, late_intel: an entry listed after its contact).",
    ["topic", "kind"],
)
CN_TZ = timezone(timedelta(hours=8))  # partners stamp local time with its offset
BENIGN_WEIGHTS = {"resident_call": 40, "resident_sms": 10, "delivery_sms": 20, "known_payee_transfer": 22, "salary": 8}
MEAN_BENIGN_OFFERS, MEAN_FRAUD_OFFERS = 1.5, 7.1  # measured means, to turn shares of messages into odds
LOG_EVERY_S = 10.0


class TrafficSimulator:
    def __init__(
        self,
        settings: Settings,
        *,
        n_persons: int = 2_000,
        n_intel: int = 500,
        seed: int | None = None,
        fraud_share: float = 0.03,
        malformed_share: float = 0.01,
        late_share: float = 0.005,
        late_listing_share: float = 0.0,
        late_listing_delay_s: tuple[float, float] = late_intel.DELAY_S,
        time_scale: float = 1 / 60,
        max_gap_s: float = 3.0,
        run_tag: str | None = None,
        producer: Producer | None = None,
    ) -> None:
        """fraud_share / malformed_share: about that share of offered messages.

        time_scale and max_gap_s compress a scenario's real gaps when it is replayed.
        run_tag goes into every event id: a restart with the same seed must not be
        dropped as duplicates, so by default it is the start time; tests fix it.
        late_listing_share: share of fraud scenarios whose number or mule account is listed
        after the contact (late_listing_delay_s of wall clock after it). 0 by default: the
        bench measures latency from a contact to its alert, which a listing minutes later
        would stretch.
        """
        self.settings = settings
        self.seed = settings.simulator_seed if seed is None else seed
        self.population = Population.generate(n_persons, self.seed)
        self.intel = Intel(n_intel, self.seed)
        self.rng = random.Random(f"traffic:{self.seed}")
        self.ids = EventIds(f"s{self.seed}r{run_tag or format(int(time.time()), 'x')}")
        self.malformed_share = malformed_share
        self.late_share = late_share
        self.late_listing_share, self.late_listing_delay_s = late_listing_share, late_listing_delay_s
        self.time_scale, self.max_gap_s = time_scale, max_gap_s
        self.fraud_odds = fraud_share * MEAN_BENIGN_OFFERS / (
            MEAN_FRAUD_OFFERS * (1 - fraud_share) + fraud_share * MEAN_BENIGN_OFFERS)
        self.producer = producer or Producer(producer_config(settings))
        catalog = get_catalog(settings.topics_file)
        self._topics = {t.id: t.name for t in catalog.of_kind("input")}
        self._encode = msgspec.json.Encoder().encode
        self._callbacks: dict[tuple[str, str], partial] = {}
        self.offered: Tally[tuple[str, str]] = Tally()  # (topic id, kind) -> delivered
        self.failed: Tally[tuple[str, str]] = Tally()
        self.scenarios: deque[Scenario] = deque(maxlen=10_000)  # ground truth of recent frauds
        self._ready: deque[tuple[Offer, str]] = deque()
        # (monotonic due, seq, offer, kind): fraud replays, and the late listings of their entries
        self._scheduled: list[tuple[float, int, Offer, str]] = []
        self._seq = 0

    # ------------------------------------------------------------------ delivery
    def _send(self, topic_id: str, key: bytes | None, payload: bytes, kind: str) -> None:
        callback = self._callbacks.get((topic_id, kind))
        if callback is None:
            callback = self._callbacks[(topic_id, kind)] = partial(self._delivered, topic_id, kind)
        while True:
            try:
                self.producer.produce(self._topics[topic_id], payload, key, on_delivery=callback)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.05)

    def _delivered(self, topic_id: str, kind: str, err, _msg) -> None:
        if err is not None:
            self.failed[(topic_id, kind)] += 1
            if sum(self.failed.values()) in (1, 10, 100, 1000):
                log.warning("simulator: delivery to %s failed (%s); %d failures so far",
                            topic_id, err, sum(self.failed.values()))
            return
        self.offered[(topic_id, kind)] += 1
        OFFERED.labels(topic_id, kind).inc()

    def offered_by_topic(self) -> dict[str, int]:
        out: Tally[str] = Tally()
        for (topic_id, _), n in self.offered.items():
            out[topic_id] += n
        return dict(out)

    def close(self, timeout: float = 30.0) -> None:
        left = self.producer.flush(timeout)
        if left:
            log.warning("simulator: %d messages were still undelivered at shutdown", left)

    # ------------------------------------------------------------------ reference data
    def seed_reference(self, stop: threading.Event | None = None) -> int:
        """Registry and intelligence lists through in_registry / in_intel; returns messages sent."""
        now = datetime.now(CN_TZ)
        sent = 0
        log.info("simulator: seeding %d intelligence entries", len(self.intel))
        for update in intel_updates(self.intel, now, self.ids.namespace):
            self._send("in_intel", f"{update.kind.value}:{update.value}".encode(), self._encode(update), "reference")
            sent += 1
        log.info("simulator: seeding the registry of %d residents, cells and branches", len(self.population))
        locations = location_updates(self.population.city, now, self.ids.namespace)
        for update in chain(locations, registry_updates(self.population, now, self.ids.namespace)):
            self._send("in_registry", update.identifier.encode(), self._encode(update), "reference")
            sent += 1
            if sent % 10_000 == 0:
                self.producer.poll(0)
                if sent % 200_000 == 0:
                    log.info("simulator: %d reference messages sent", sent)
                if stop is not None and stop.is_set():
                    break
        left = self.producer.flush(60)
        log.info("simulator: reference data seeded (%d messages, %d still undelivered)", sent, left)
        return sent

    # ------------------------------------------------------------------ traffic
    def run(self, stop: threading.Event, rate: float | None = None) -> None:
        """Offer messages at `rate` per second until `stop` is set; flushes before returning."""
        rate = rate or self.settings.simulator_rate
        log.info("simulator: offering traffic at %.0f messages/s", rate)
        start = t0 = time.monotonic()
        sent, next_log = 0, start + LOG_EVERY_S
        while not stop.is_set():
            now = time.monotonic()
            behind = now - (t0 + sent / rate)
            if behind < 0:
                stop.wait(-behind)  # sleeps until the next message is due: no busy wait
                continue
            if behind > 1.0:
                t0 += behind - 1.0  # after a stall owe at most one second: no flood
                behind = 1.0
            for _ in range(min(int(behind * rate) + 1, 1000)):
                self._offer_next(now)
                sent += 1
            self.producer.poll(0)
            if now >= next_log:
                self._log_progress(now - start)
                next_log = now + LOG_EVERY_S
        self.close()
        self._log_progress(time.monotonic() - start)

    def _offer_next(self, now: float) -> None:
        if self._scheduled and self._scheduled[0][0] <= now:
            self._emit(*heapq.heappop(self._scheduled)[2:])
            return
        if not self._ready:
            draw = self.rng.random()
            if draw < self.malformed_share:
                topic_id, key, payload, _ = malformed(self._template(), self.rng)
                self._send(topic_id, key, payload, "malformed")
                return
            if draw < self.malformed_share + self.fraud_odds:
                self._start_fraud(now)
                if self._scheduled and self._scheduled[0][0] <= now:
                    self._emit(*heapq.heappop(self._scheduled)[2:])
                    return
            self._ready.extend(self._benign().offers)
        self._emit(self._ready.popleft(), "benign")

    def _emit(self, offer: Offer, kind: str) -> None:
        at = datetime.now(CN_TZ)
        if kind == "benign":
            late = self.rng.random() < self.late_share
            at -= timedelta(seconds=self.rng.uniform(300, 7200) if late else self.rng.uniform(-0.5, 2.0))
        self._send(offer.topic_id, offer.key, self._encode(retimed(offer.value, at)), kind)

    def _start_fraud(self, now: float) -> None:
        typology = self.rng.choice(FRAUD_TYPOLOGIES)
        victim = self._victim(typology)
        scenario = sc.FRAUD_BUILDERS[typology](victim, self.intel, datetime.now(CN_TZ), self.rng, self.ids)
        # Drawn only when asked for: with no late listings the traffic is what it always was, seed for seed.
        if self.late_listing_share and self.rng.random() < self.late_listing_share:
            scenario = late_intel.listed_late(scenario, self.intel, self.rng, self.ids, self.late_listing_delay_s)
        self.scenarios.append(scenario)
        due, previous = now, scenario.offers[0].value.event_time
        due_of: dict[str, float] = {}
        for offer in scenario.offers:
            gap = (offer.value.event_time - previous).total_seconds()
            due += min(max(gap, 0.0) * self.time_scale, self.max_gap_s)
            previous = offer.value.event_time
            due_of[offer.value.event_id] = due
            self._schedule(due, offer, "fraud")
        for listing in scenario.listings:  # after the contact by real seconds: late news is not compressed
            self._schedule(due_of[listing.after] + listing.delay_s, listing.offer, "late_intel")
        log.info("simulator: fraud scenario %s started for %s (%d events, funds warning expected: %s%s)",
                 scenario.name, victim.person_id, len(scenario.offers), scenario.expect_funds_warning,
                 "".join(f"; its {x.offer.value.kind.value} listed {x.delay_s:.0f} s after the contact"
                         for x in scenario.listings))

    def _schedule(self, due: float, offer: Offer, kind: str) -> None:
        self._seq += 1
        heapq.heappush(self._scheduled, (due, self._seq, offer, kind))

    def _victim(self, typology) -> Person:
        return pick_victim(self.population, self.rng, typology)

    def _benign(self) -> Scenario:
        return benign_scenario(self.population, self.rng, self.ids, datetime.now(CN_TZ))

    def _template(self) -> Offer:
        """A valid message to break: carrier, bank or app traffic."""
        topic_id = self.rng.choice(("in_telecom", "in_bank", "in_app_report"))
        person, at = self.population.random_person(self.rng), datetime.now(CN_TZ)
        if topic_id == "in_telecom":
            return sc.delivery_sms(person, at, self.rng, self.ids).offers[0]
        if topic_id == "in_bank":
            return sc.salary(person, at, self.rng, self.ids).offers[0]
        return sc.app_report(self.ids, person, at, ReportKind.suspicious_sms, counterpart=f"{sc.DELIVERY_PREFIX}000000001")

    def _log_progress(self, elapsed: float) -> None:
        by_kind: Tally[str] = Tally()
        for (_, kind), n in self.offered.items():
            by_kind[kind] += n
        traffic = sum(n for kind, n in by_kind.items() if kind != "reference")
        log.info("simulator: %d messages in %.0f s (%.0f/s): benign %d, fraud %d, malformed %d, late listings %d; "
                 "%d fraud scenarios started, %d of their events pending",
                 traffic, elapsed, traffic / max(elapsed, 1e-9), by_kind["benign"], by_kind["fraud"],
                 by_kind["malformed"], by_kind["late_intel"], len(self.scenarios), len(self._scheduled))


def pick_victim(population: Population, rng: random.Random, typology) -> Person:
    """Fraud reaches the vulnerable more often: try a few residents for the preferred group."""
    prefers = sc.PREFERRED_VICTIM[typology]
    for _ in range(30):
        person = population.random_person(rng)
        if prefers(person):
            return person
    return person


def benign_scenario(population: Population, rng: random.Random, ids: EventIds, at: datetime) -> Scenario:
    """One piece of ordinary life at `at`, drawn by BENIGN_WEIGHTS (simulator.recording uses it too)."""
    name = rng.choices(list(BENIGN_WEIGHTS), weights=list(BENIGN_WEIGHTS.values()))[0]
    person = population.random_person(rng)
    if name in ("resident_call", "resident_sms", "known_payee_transfer"):
        other = population.random_person(rng)
        if other.index == person.index:
            other = population[(person.index + 1) % len(population)]
        return getattr(sc, name)(person, other, at, rng, ids)
    return getattr(sc, name)(person, at, rng, ids)


def retimed(value: msgspec.Struct, at: datetime) -> msgspec.Struct:
    """The event stamped `at`; a case keeps its distance between occurrence and filing."""
    if isinstance(value, CaseReport):
        return msgspec.structs.replace(value, event_time=at, occurred_at=at - (value.event_time - value.occurred_at))
    return msgspec.structs.replace(value, event_time=at)


def main(settings: Settings, *, n_persons: int = 2_000, n_intel: int = 500) -> None:
    """Seed reference data, then offer traffic at settings.simulator_rate until SIGINT/SIGTERM."""
    if not settings.kafka_bootstrap_servers:
        raise RuntimeError("the simulator needs KAFKA_BOOTSTRAP_SERVERS (start the embedded broker first)")
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    simulator = TrafficSimulator(settings, n_persons=n_persons, n_intel=n_intel,
                                 late_listing_share=settings.simulator_late_listing_share)
    try:
        simulator.seed_reference(stop)
        if not stop.is_set():
            simulator.run(stop, settings.simulator_rate)
    finally:
        simulator.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("simulator: stopped")
