"""The reach-back backlog: how many reach-back re-checks wait behind the live path, asked of the broker.

A listing that reaches back to many residents (a ministry list of 100,000 entries) queues a
re-check per resident on intel_reach_back; agents/reach_back.py hands them to correlation at a
bounded pace. What still waits is that stage's lag: per partition, the end offset minus the
offset the stream worker's consumer group (the app id, topics.yaml) has committed, or minus the
earliest offset while it has committed nothing (it starts from the earliest record). The figure
is city-wide and names nobody.

Read with a confluent-kafka Consumer that never joins the group: it only fetches the group's
committed offsets and the watermarks, so the workers' group is not rebalanced. (Not the
AdminClient: admin requests timing out while the broker is away have been seen to abort the
process, faults/suite.py; the console must outlive a broker restart.)
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.catalog import Catalog
from streams.settings import Settings

log = logging.getLogger(__name__)

TOPIC_ID = "intel_reach_back"


class ReachBackBacklog:
    def __init__(self, settings: Settings, catalog: Catalog, cache_s: float = 2.0, timeout_s: float = 3.0) -> None:
        self.bootstrap = settings.kafka_bootstrap_servers
        self.group = catalog.app_id
        self.spec = catalog.topic(TOPIC_ID)
        # The pace the workers drain at: ANTIFRAUD_REACH_BACK_RATE per worker holding a partition.
        self.rate = settings.reach_back_rate * max(1, min(settings.worker_processes, self.spec.partitions))
        self.cache_s, self.timeout_s = cache_s, timeout_s
        self._lock = threading.Lock()  # the console serves requests from a thread pool
        self._reader: Consumer | None = None
        self._last: tuple[float, dict] | None = None

    def read(self) -> dict:
        """{"waiting": re-checks not yet handed on (None when the broker cannot be asked), ...}; cached briefly,
        so a dashboard refreshed by many units asks the broker once."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.cache_s:
                return self._last[1]
            answer = self._ask()
            self._last = (time.monotonic(), answer)
            return answer

    def close(self) -> None:
        with self._lock:
            self._drop_reader()

    def _ask(self) -> dict:
        out = {"topic": self.spec.name, "group": self.group, "waiting": None, "drain_s": None, "partitions": [],
               "at": datetime.now(UTC), "error": None}
        if not self.bootstrap:
            out["error"] = "no broker configured (KAFKA_BOOTSTRAP_SERVERS)"
            return out
        try:
            out["partitions"] = self._positions()
        except (KafkaException, RuntimeError) as exc:  # the broker is away: no figure, and a new reader next time
            self._drop_reader()
            why = exc.args[0].name() if isinstance(exc, KafkaException) and exc.args else type(exc).__name__
            out["error"] = f"broker not answering ({why})"
            log.warning("console: reach-back backlog not read: %s", out["error"])
            return out
        out["waiting"] = sum(p["waiting"] for p in out["partitions"])
        out["drain_s"] = round(out["waiting"] / self.rate, 1)
        return out

    def _positions(self) -> list[dict]:
        reader = self._reader_now()
        tps = [TopicPartition(self.spec.name, p) for p in range(self.spec.partitions)]
        committed = {tp.partition: tp.offset for tp in reader.committed(tps, timeout=self.timeout_s)}
        rows = []
        for tp in tps:
            low, high = reader.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
            done = committed.get(tp.partition, -1)
            position = max(done, low) if done >= 0 else low  # nothing committed yet: it starts at the earliest
            rows.append({"partition": tp.partition, "end": high, "committed": done if done >= 0 else None,
                         "waiting": max(0, high - position)})
        return rows

    def _reader_now(self) -> Consumer:
        if self._reader is None:
            self._reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                                     "enable.auto.commit": False, "log_level": 0})
        return self._reader

    def _drop_reader(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except RuntimeError:  # already closed
                pass
            self._reader = None
