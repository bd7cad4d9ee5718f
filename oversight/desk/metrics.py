"""The desk's figures on the console's /metrics: tasks by state and channel, read from the ledger
database at each scrape (`antifraud up` shows them in its summary; the state is the database's,
so every console process reports the same numbers)."""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from oversight import schema

log = logging.getLogger(__name__)


class DeskTaskCollector:
    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        tasks = GaugeMetricFamily("antifraud_desk_tasks", "Desk tasks by state (open, closing, closed) and channel",
                                  labels=["state", "channel"])
        t = schema.desk_tasks.c
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t.state, t.channel, func.count()).group_by(t.state, t.channel)).all()
        except OperationalError as exc:  # the database is away (or busy): no figure this scrape, not a failed one
            log.warning("desk: task figures not read (%s)", type(exc.orig).__name__)
            rows = []
        for state, channel, count in rows:
            tasks.add_metric([state, channel], count)
        yield tasks
