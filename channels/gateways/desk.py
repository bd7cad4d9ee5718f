"""The desk gateway: a police visit or hotline call becomes a task that people work (docs/desk.md).

Selected per channel by ANTIFRAUD_DESK_CHANNELS. `hand_over` records the task in the ledger
database (held by the unit the action was routed to) and the worker produces no outcome: the
outcome comes later, from the desk's outcome API (oversight/desk/api.py), exactly once.

What escalation does not watch, the desk does: an action whose routing rule is not SLA-tracked
(hotline calls) and whose task is still open at its deadline is closed as not reached, the
answer a simulated call that nobody picked up gives, so escalation retries or moves on exactly
as it does for simulated outcomes. SLA-tracked visits are escalation's (a supervisor visit);
their tasks stay open for the officer's late answer. The same sweep finishes a post that stored
its outcome and died before Kafka had it (oversight/desk/closing.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from channels.gateways.base import GatewayReply
from channels.metrics import GATEWAY_CALLS
from oversight import schema
from oversight.db import aware, migrate
from oversight.desk.closing import Closer
from oversight.desk.tasks import CLOSING, OPEN, holder_of, record_task, utc_now
from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.routing import get_routing
from streams.settings import Settings

log = logging.getLogger(__name__)

DESK_CHANNELS = (Channel.police_visit, Channel.hotline_call)
SWEEP_EVERY_S = 1.0
SWEEP_BATCH = 100
DB_PATIENCE_S = 30.0  # then the worker stops uncommitted (ConnectionError is infrastructure): a restart heals
NOT_ANSWERED = "no outcome recorded at the desk by the deadline: not reached"


class DeskGateway:
    name = "desk"
    hands_over = True  # the worker records no outcome for a send (channels/worker.py)
    concurrency = 1

    def __init__(self, settings: Settings, channel: Channel):
        if channel not in DESK_CHANNELS:
            raise ValueError(f"the desk takes police_visit and hotline_call, not {channel.value}")
        self.settings, self.channel = settings, channel
        self.engine = migrate(settings)
        routing = get_routing(settings)
        self.desks = routing.duty_desks
        # Tiers whose rule for this channel escalation watches by deadline: the desk leaves those alone.
        self.tracked_tiers = [tier.value for tier, rule in routing.tiers.items()
                              for a in rule.actions if a.channel is channel and a.sla_tracked]
        self._next_sweep = 0.0

    def send(self, action: Action, outcome_id: str) -> GatewayReply:
        """Record the task (again is harmless: the same row); what the worker calls for a hands-over gateway."""
        holder = holder_of(action, self.desks, self.settings.desk_hotline_team)
        new = self._patiently(lambda: self._record(action, outcome_id, holder))
        GATEWAY_CALLS.labels(self.channel.value, self.name, "ok").inc()
        log.info("desk: task %s %s for %s", outcome_id, "recorded" if new else "was recorded before", holder.name)
        return GatewayReply(Result.delivered, f"handed to the desk of {holder.name}")

    def _record(self, action: Action, task_id: str, holder) -> bool:
        try:
            with self.engine.begin() as conn:
                return record_task(conn, action, task_id, holder, datetime.now(UTC))
        except IntegrityError:
            return False  # another worker recorded it between our look and our insert

    def sweep(self, deliver: Callable[[Outcome], None]) -> int:
        """Close overdue tasks escalation does not watch as not reached; at most once a second."""
        if time.monotonic() < self._next_sweep:
            return 0
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        try:
            return self._sweep(deliver)
        except OperationalError as exc:  # the database is away: the next sweep tries again
            log.warning("desk: deadline sweep skipped, the ledger database does not answer (%s)",
                        type(exc.orig).__name__)
            return 0

    def _sweep(self, deliver: Callable[[Outcome], None]) -> int:
        t = schema.desk_tasks
        lease_s = self.settings.desk_produce_timeout_s * 2
        overdue = (t.c.state == OPEN) & (t.c.deadline <= utc_now()) & t.c.tier.not_in(self.tracked_tiers)
        # A post that stored its outcome and died before Kafka had it (and was never repeated): finish it.
        stranded = (t.c.state == CLOSING) & (t.c.closing_since <= utc_now() - timedelta(seconds=lease_s))
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.channel == self.channel.value, overdue | stranded)
                                .order_by(t.c.deadline).limit(SWEEP_BATCH)).mappings().all()
        closer = Closer(self.engine, deliver, lease_s)
        closed = 0
        for row in rows:
            _, produced = closer.close(row["task_id"], not_answered(row), "desk:deadline", wait=False)
            closed += produced
        if closed:
            log.info("desk: %d %s tasks closed (past their deadline: not reached; or a stranded post's outcome)",
                     closed, self.channel.value)
        return closed

    def _patiently(self, call):
        waited, pause = 0.0, 0.5
        while True:
            try:
                return call()
            except OperationalError as exc:
                if waited >= DB_PATIENCE_S:
                    raise ConnectionError("the ledger database does not answer") from exc
                log.warning("desk: the ledger database does not answer (%s); again in %.1f s",
                            type(exc.orig).__name__, pause)
                time.sleep(pause)
                waited, pause = waited + pause, min(pause * 2, 5.0)

    def worst_case_s(self) -> float:
        return DB_PATIENCE_S + 10.0

    def close(self) -> None:
        self.engine.dispose()


def not_answered(row) -> Outcome:
    """The outcome of a task nobody answered by its deadline: not reached, like an unanswered call."""
    return Outcome(outcome_id=row["task_id"], action_id=row["action_id"], alert_id=row["alert_id"],
                   person_id=row["person_id"], channel=Channel(row["channel"]), result=Result.unreachable,
                   started_at=aware(row["created_at"]), finished_at=datetime.now(UTC), attempt=row["attempt"],
                   detail=NOT_ANSWERED)
