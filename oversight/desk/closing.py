"""Closing a desk task: exactly one outcome on the outcomes topic, whoever posts and how often.

    open --CAS--> closing(outcome stored, since) --produced and flushed--> closed

- The first post (or the desk's SLA sweep) to move `open` to `closing` decides the outcome:
  it is stored in the row before it is produced, and only the winner of that compare-and-set
  produces it. A repeated post, a second officer at the same moment, a retry after a timeout:
  each finds the stored outcome and produces nothing.
- A post that finds `closing` waits for `closed` (the winner is producing). A row still
  `closing` after the lease belonged to a request that died between storing and producing:
  the waiter takes it over (another compare-and-set, on `closing_since`) and produces the
  stored outcome, same bytes; so does the channel worker's sweep (channels/gateways/desk.py), so a
  post that dies there and is never repeated still ends in its outcome. The one case that can put an outcome on the topic twice is that
  request dying after Kafka took the record and before `closed` was written; both copies have
  the same outcome id, and escalation and the ledger keep one per outcome id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import msgspec
from sqlalchemy import Engine, select, update

from oversight import schema
from oversight.desk.tasks import CLOSED, CLOSING, OPEN, utc_now
from streams.contracts.actions import Outcome

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Outcome).decode
WAIT_STEP_S = 0.05


class StillClosing(RuntimeError):
    """Another request is producing this task's outcome and did not finish within the lease."""


class Closer:
    """Closes tasks; `produce` puts one outcome on the outcomes topic and returns once Kafka has it
    (raising when it could not)."""

    def __init__(self, engine: Engine, produce: Callable[[Outcome], None], lease_s: float):
        self.engine, self.produce, self.lease_s = engine, produce, lease_s

    def close(self, task_id: str, outcome: Outcome, by: str, *, wait: bool = True) -> tuple[Outcome, bool]:
        """(the outcome that stands, True if this call produced it). With wait=False a task another
        caller is closing is left to it: (its stored outcome, False)."""
        t = schema.desk_tasks
        now = utc_now()
        with self.engine.begin() as conn:
            won = conn.execute(update(t).where(t.c.task_id == task_id, t.c.state == OPEN).values(
                state=CLOSING, closing_since=now, outcome=_encode(outcome).decode(), closed_by=by[:64])).rowcount
        if won:
            self._produce_and_close(task_id, outcome, now)
            return outcome, True
        return self._settle(task_id, wait)

    def _settle(self, task_id: str, wait: bool) -> tuple[Outcome, bool]:
        t = schema.desk_tasks
        deadline = time.monotonic() + self.lease_s
        while True:
            with self.engine.connect() as conn:
                row = conn.execute(select(t.c.state, t.c.outcome, t.c.closing_since)
                                   .where(t.c.task_id == task_id)).one()
            stored = _decode(row.outcome)
            if row.state == CLOSED:
                return stored, False
            if utc_now() - row.closing_since >= timedelta(seconds=self.lease_s):
                taken = self._take_over(task_id, row.closing_since)
                if taken is not None:
                    self._produce_and_close(task_id, stored, taken)
                    return stored, True
                continue  # another waiter took it over: wait for it
            if not wait:
                return stored, False
            if time.monotonic() >= deadline:
                raise StillClosing(task_id)
            time.sleep(WAIT_STEP_S)

    def _take_over(self, task_id: str, since):
        t = schema.desk_tasks
        now = utc_now()
        with self.engine.begin() as conn:
            taken = conn.execute(update(t).where(t.c.task_id == task_id, t.c.state == CLOSING,
                                                 t.c.closing_since == since).values(closing_since=now)).rowcount
        return now if taken else None

    def _produce_and_close(self, task_id: str, outcome: Outcome, since) -> None:
        self.produce(outcome)  # raises when Kafka did not take it: the row stays `closing` for a retry
        t = schema.desk_tasks
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.task_id == task_id, t.c.state == CLOSING, t.c.closing_since == since)
                         .values(state=CLOSED, closed_at=utc_now()))
