"""The desk's side of the outcomes topic: an outcome for a task, and producing it synchronously."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
from confluent_kafka import Producer

from channels.gateways.base import scrub
from channels.metrics import OUTCOMES
from oversight.db import aware
from streams.catalog import Catalog
from streams.contracts.actions import DESK_RESULTS, Channel, DeskFinding, Outcome
from streams.kafka import producer_config
from streams.settings import Settings

_encode = msgspec.json.Encoder().encode


class NotTaken(RuntimeError):
    """Kafka did not take the outcome in time (or refused it): the post may be repeated."""


def desk_outcome(task, finding: DeskFinding, note: str, amount_sent: Decimal | None) -> Outcome:
    """The Outcome for a task row: the desk's finding mapped to the contract's result."""
    what = finding.value.replace("_", " ")
    return Outcome(
        outcome_id=task["task_id"], action_id=task["action_id"], alert_id=task["alert_id"],
        person_id=task["person_id"], channel=Channel(task["channel"]), result=DESK_RESULTS[finding],
        started_at=aware(task["created_at"]), finished_at=datetime.now(UTC), attempt=task["attempt"],
        detail=scrub(f"desk: {what}" + (f": {note}" if note else "")), finding=finding, amount_sent=amount_sent,
    )


class OutcomeProducer:
    """Produces one outcome and waits until Kafka has it; thread-safe (one producer for every request)."""

    def __init__(self, settings: Settings, catalog: Catalog):
        self.settings, self.topic = settings, catalog.topic("outcomes").name
        self.timeout_s = settings.desk_produce_timeout_s
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    @property
    def producer(self) -> Producer:
        """Made at the first outcome: a console nobody posts to never connects to the broker for it."""
        with self._lock:
            if self._producer is None:
                self._producer = Producer(producer_config(self.settings, **{"linger.ms": 0}))
            return self._producer

    def __call__(self, outcome: Outcome) -> None:
        done, errors = threading.Event(), []

        def delivered(err, _msg) -> None:
            if err is not None:
                errors.append(str(err))
            done.set()

        self.producer.produce(self.topic, key=outcome.person_id.encode(), value=_encode(outcome),
                              on_delivery=delivered)
        give_up = time.monotonic() + self.timeout_s
        while not done.is_set() and time.monotonic() < give_up:
            self.producer.poll(0.05)  # serves every request's callbacks, this one's among them
        if errors or not done.is_set():
            raise NotTaken(errors[0] if errors else f"no acknowledgement within {self.timeout_s:.0f} s")
        OUTCOMES.labels(outcome.channel.value, outcome.result.value).inc()  # beside the channel workers' own

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(self.timeout_s)
