"""Follow-up sampling (定期回访抽查): once a period (default daily), a seeded random sample of
the persons marked dissuaded in the period before, per station, becomes follow-up tasks
for that station (followup_tasks topic).

The sample is reproducible: candidates are sorted, and each station draws with
random.Random("<seed>:<period start>:<station>"); the same ledger, seed and period give
the same tasks (whose ids are deterministic too). Each station gets
max(minimum, ceil(percent x its candidates)) persons, all of them when it has fewer.

Outcomes come back on followup_outcomes; the ledger records them, and "not_dissuaded"
reopens the alert (oversight.status) and counts against the station (console statistics).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
from confluent_kafka import Producer
from prometheus_client import Counter
from sqlalchemy import Engine, insert, select

from oversight import schema
from oversight.contracts import FollowupTask
from oversight.db import aware, migrate, utc
from oversight.queries import latest_phones
from streams.catalog import Catalog, get_catalog
from streams.kafka import producer_config
from streams.settings import Settings
from streams.shutdown import stop_on_signals

log = logging.getLogger(__name__)

TASKS = Counter("antifraud_followup_tasks_total", "Follow-up tasks issued, by county", ["county"])
ENCODE = msgspec.json.Encoder()


@dataclass(frozen=True)
class Candidate:
    person_id: str
    alert_id: str
    county: str
    station: str
    grid: str
    dissuaded_at: datetime


def last_period(now: datetime, every_s: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The last complete period before `now`, aligned to the city's midnight (for daily periods)."""
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    steps = math.floor((local - midnight).total_seconds() / every_s)
    end = midnight + timedelta(seconds=steps * every_s)
    return (end - timedelta(seconds=every_s)).astimezone(UTC), end.astimezone(UTC)


def candidates(conn, start: datetime, end: datetime) -> list[Candidate]:
    """Persons whose alert is dissuaded (not reopened, not closed) with the dissuasion in [start, end); one per person."""
    s = schema.alert_status.c
    rows = conn.execute(select(s.person_id, s.alert_id, s.county, s.station, s.grid, s.dissuaded_at).where(
        s.status == "dissuaded", s.dissuaded_at >= utc(start), s.dissuaded_at < utc(end),
    ).order_by(s.person_id, s.dissuaded_at.desc(), s.alert_id)).all()
    latest: dict[str, Candidate] = {}
    for person_id, alert_id, county, station, grid, at in rows:
        latest.setdefault(person_id, Candidate(person_id, alert_id, county, station, grid, aware(at)))
    return sorted(latest.values(), key=lambda c: (c.station, c.person_id))


def draw(pool: list[Candidate], percent: float, minimum: int, seed: int, period_start: datetime,
         unit: str) -> list[Candidate]:
    pool = sorted(pool, key=lambda c: c.person_id)
    size = min(len(pool), max(minimum, math.ceil(len(pool) * percent / 100)))
    rng = random.Random(f"{seed}:{period_start.isoformat()}:{unit}")
    return sorted(rng.sample(pool, size), key=lambda c: c.person_id)


def sample(pool: list[Candidate], percent: float, minimum: int, seed: int, period_start: datetime) -> list[Candidate]:
    by_station: dict[str, list[Candidate]] = defaultdict(list)
    for c in pool:
        by_station[c.station].append(c)
    return [chosen for station in sorted(by_station)
            for chosen in draw(by_station[station], percent, minimum, seed, period_start, station)]


def tasks_for(chosen: list[Candidate], phones: dict[str, str | None], start: datetime, end: datetime,
              settings: Settings) -> list[FollowupTask]:
    return [FollowupTask(
        task_id=f"FU-{start.strftime('%Y%m%dT%H%M')}-{c.person_id}", period_start=start, period_end=end,
        person_id=c.person_id, alert_id=c.alert_id, county=c.county, station=c.station, grid=c.grid,
        dissuaded_at=c.dissuaded_at, due_at=end + timedelta(days=settings.followup_due_days),
        seed=settings.followup_seed, phone=phones.get(c.alert_id),
    ) for c in chosen]


class FollowupSampler:
    def __init__(self, settings: Settings, engine: Engine, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.engine = engine
        catalog = catalog or get_catalog(settings.topics_file)
        self.topic = catalog.topic("followup_tasks").name
        self.producer = Producer(producer_config(settings))
        self.tz = ZoneInfo(settings.contact_timezone)

    def plan(self, start: datetime, end: datetime) -> tuple[int, list[FollowupTask]]:
        """The candidates and tasks of a period (no side effect): what run_once publishes."""
        s = self.settings
        with self.engine.connect() as conn:
            pool = candidates(conn, start, end)
            chosen = sample(pool, s.followup_percent, s.followup_min_per_unit, s.followup_seed, start)
            phones = latest_phones(conn, [c.alert_id for c in chosen]) if chosen else {}
        return len(pool), tasks_for(chosen, phones, start, end, s)

    def run_once(self, now: datetime | None = None) -> list[FollowupTask]:
        """Sample the last complete period unless it was sampled already; publish its tasks."""
        start, end = last_period(now or datetime.now(UTC), self.settings.followup_every_s, self.tz)
        runs = schema.followup_runs
        with self.engine.connect() as conn:
            if conn.execute(select(runs.c.period_start).where(runs.c.period_start == utc(start))).first():
                return []
        pool, tasks = self.plan(start, end)
        for task in tasks:
            self.producer.produce(self.topic, key=task.station.encode(), value=ENCODE.encode(task))
            TASKS.labels(task.county).inc()
        if self.producer.flush(30) != 0:
            raise RuntimeError("follow-up: tasks not delivered; the period will be sampled again")
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(
                period_start=utc(start), period_end=utc(end), ran_at=utc(datetime.now(UTC)),
                seed=self.settings.followup_seed, candidates=pool, sampled=len(tasks)))
        log.info("follow-up: period %s: %d tasks", start.isoformat(), len(tasks))
        return tasks


def run_followup(settings: Settings, stop: threading.Event | None = None, check_every_s: float = 60.0) -> None:
    """`antifraud followup`: sample each period once it ends (checked every minute) until stopped."""
    stop = stop or stop_on_signals()
    engine = migrate(settings)
    sampler = FollowupSampler(settings, engine)
    try:
        while True:
            sampler.run_once()
            if stop.wait(check_every_s):
                break
    finally:
        engine.dispose()
