"""Follow-up sampling: a reproducible seeded sample per station, published once per period;
a "not actually dissuaded" result reopens the alert and counts against the station."""

from __future__ import annotations

import math
import threading
import zlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec
from confluent_kafka import Producer
from fastapi.testclient import TestClient
from ledger_data import load
from scenario import Story, publish, wait_until
from sqlalchemy import select

from oversight import schema
from oversight.console import create_app
from oversight.contracts import FollowupResult
from oversight.followup import FollowupSampler, last_period
from oversight.ledger import LedgerSink
from streams.contracts import Channel, Result
from streams.kafka import producer_config
from streams.settings import Settings

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # 18:00 in the city: the period is 20 Nov (city time)


def dissuaded_people(station: str, count: int, prefix: str) -> list[Story]:
    stories = []
    for n in range(count):
        s = Story(f"{prefix}-{n:03d}", f"+86135{zlib.crc32(f'{station}:{n}'.encode()) % 10**8:08d}", station=station)
        s.alert(f"{prefix}-AL{n:03d}", n)
        call = s.action(f"{prefix}-AL{n:03d}", Channel.hotline_call, n + 1)
        s.outcome(call, Result.dissuaded, n + 3)
        stories.append(s)
    return stories


def sampler(settings, engine, catalog, **changes) -> FollowupSampler:
    base = dict(followup_percent=10.0, followup_min_per_unit=2, followup_seed=7)
    return FollowupSampler(settings.model_copy(update={**base, **changes}), engine, catalog)


def test_the_period_is_the_last_city_day():
    start, end = last_period(NOW, 86400, ZoneInfo("Asia/Shanghai"))
    assert (start.isoformat(), end.isoformat()) == ("2026-11-19T16:00:00+00:00", "2026-11-20T16:00:00+00:00")


def test_sample_is_reproducible_and_respects_percent_and_minimum(settings, oversight_catalog, ledger_engine):
    load(ledger_engine, dissuaded_people("ZK01-PS01", 40, "P-FU-A") + dissuaded_people("ZK01-PS02", 3, "P-FU-B"))
    start, end = last_period(NOW, 86400, ZoneInfo("Asia/Shanghai"))
    pool, tasks = sampler(settings, ledger_engine, oversight_catalog).plan(start, end)
    assert pool == 43
    per_station = {st: [t.person_id for t in tasks if t.station == st] for st in ("ZK01-PS01", "ZK01-PS02")}
    assert len(per_station["ZK01-PS01"]) == math.ceil(40 * 0.10)  # 4
    assert len(per_station["ZK01-PS02"]) == 2  # the minimum per unit
    again = sampler(settings, ledger_engine, oversight_catalog).plan(start, end)[1]
    assert again == tasks  # same ledger, seed and period: the same tasks, ids included
    other_seed = sampler(settings, ledger_engine, oversight_catalog, followup_seed=8).plan(start, end)[1]
    assert [t.person_id for t in other_seed] != [t.person_id for t in tasks]
    everyone = sampler(settings, ledger_engine, oversight_catalog, followup_percent=100.0).plan(start, end)[1]
    assert len(everyone) == 43


def test_tasks_go_to_stations_and_not_dissuaded_reopens_the_alert(settings, oversight_catalog, ledger_engine,
                                                                  group_id, consumer_factory):
    publish(Producer(producer_config(settings)),
            oversight_catalog, dissuaded_people("ZK09-PS01", 5, "P-FU-C"))
    stop = threading.Event()
    sink = LedgerSink(settings, ledger_engine, oversight_catalog, group_id=group_id)
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: _dissuaded(ledger_engine, "ZK09-PS01") == 5)
        s = sampler(settings, ledger_engine, oversight_catalog, followup_percent=20.0, followup_min_per_unit=1)
        tasks = [t for t in s.run_once(NOW) if t.station == "ZK09-PS01"]
        assert len(tasks) == 1 and tasks[0].phone and tasks[0].phone.startswith("+86135")
        assert s.run_once(NOW) == []  # a period is sampled once

        reader = consumer_factory(oversight_catalog.topic("followup_tasks").name)
        published = reader.read_until(lambda ms: any(m.value() == msgspec.json.encode(tasks[0]) for m in ms))
        assert any(m.key() == b"ZK09-PS01" for m in published)

        task = tasks[0]
        story = Story(task.person_id, "+8613500000000", station="ZK09-PS01")
        story.followup(task.task_id, task.alert_id, FollowupResult.not_dissuaded, 3 * 24 * 60)
        publish(Producer(producer_config(settings)), oversight_catalog,
                [story])
        wait_until(lambda: _status(ledger_engine, task.alert_id) == ("open", True))
        wait_until(lambda: _tasks(ledger_engine, task.task_id))

        app = create_app(Settings(console_tokens={"c": "centre"}), ledger_engine)
        with TestClient(app) as client:
            rows = client.get("/api/stats/followups", headers={"Authorization": "Bearer c"},
                              params={"station": "ZK09-PS01"}).json()
            assert rows == [{"county": "ZK01", "station": "ZK09-PS01", "sampled": 1, "confirmed": 0,
                             "not_dissuaded": 1, "unreachable": 0, "pending": 0}]
    finally:
        stop.set()
        thread.join(15)


def _dissuaded(engine, station: str) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(schema.alert_status).where(
            schema.alert_status.c.station == station, schema.alert_status.c.status == "dissuaded")).all())


def _status(engine, alert_id: str):
    with engine.connect() as conn:
        row = conn.execute(select(schema.alert_status.c.status, schema.alert_status.c.reopened).where(
            schema.alert_status.c.alert_id == alert_id)).first()
    return tuple(row) if row else None


def _tasks(engine, task_id: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(schema.followup_tasks).where(schema.followup_tasks.c.task_id == task_id)).first())
