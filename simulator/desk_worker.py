"""The simulator's desk staff: simulated officers and operators who work `make run`'s desk tasks
through the same HTTP API a person uses (oversight/desk/api.py, docs/desk.md).

One simulated user per unit that holds a task (an officer of each station, the county bureaus'
and the centre's duty desks, an operator of the 96110 team) signs in with a password, takes the
task and records what happened. What happened, and how long it took, are drawn exactly as the
simulated gateway draws them for the same attempt (channels/gateways/simulated.py, same seed and
outcome id), told in the desk's words: dissuaded, not reached (a failed attempt too: nobody was
reached), refused (a fifth of those: money already sent, with an amount), false alarm (the
gateway's "answered, no commitment": the same `answered` result). The task shows no person id, so
the age band behind the odds is drawn from the alert id, with the same age pyramid.

Which units hold work the staff learns from a centre auditor (`sim.watch`: sees every open task,
writes nothing). Units named in `human_units` (the person `antifraud up` created) get
HUMAN_FIRST_S before a simulated colleague takes an untaken task, so a person can work one by hand;
a task a person took is left to them. The staff's passwords live one run: each start sets new ones.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass

import httpx
from prometheus_client import Counter
from sqlalchemy import Engine

from channels.gateways.simulated import simulate_contact, synthetic_age_band
from oversight.desk import people
from streams.contracts.actions import Channel, DeskFinding, Result
from streams.contracts.common import Typology
from streams.settings import Settings

log = logging.getLogger(__name__)

WATCH_USER = "sim.watch"
POLL_S = 1.0
PICK_UP_S = (0.5, 3.0)  # from a task showing on the unit's list to an officer taking it
HUMAN_FIRST_S = 90.0
MONEY_SENT_SHARE = 0.2  # of refusals, the ones where the money had already gone
LOG_EVERY_S = 10.0
RETRY_S = 1.0  # after a 503 (Kafka slow) or a failed call: post again, it is recorded once
FINDING = {Result.dissuaded: DeskFinding.dissuaded, Result.unreachable: DeskFinding.not_reached,
           Result.failed: DeskFinding.not_reached, Result.refused: DeskFinding.refused,
           Result.answered: DeskFinding.false_alarm}
ROLE_OF_UNIT = {"station": "officer", "county": "county", "centre": "centre", "hotline": "operator"}

WORKED = Counter("antifraud_desk_simulated_outcomes_total",
                 "Desk tasks the simulator's staff recorded an outcome for, by finding", ["finding"])


@dataclass
class Plan:
    """What the simulated staff will do with one task, and when."""

    task_id: str
    unit: str
    take_at: float
    post_after_s: float
    finding: DeskFinding
    note: str
    amount_sent: str | None = None
    post_at: float | None = None  # set once taken


def plan_for(task: dict, seed: int, time_scale: float, now: float, rng: random.Random,
             human_units: frozenset[str]) -> Plan:
    """The gateway's draw for this attempt (its task id is the outcome id), as a desk outcome."""
    channel = Channel(task["channel"])
    reply, took_s = simulate_contact(channel, Typology(task["warning_type"]), synthetic_age_band(task["alert_id"]),
                                     task["task_id"], seed)
    finding, amount = FINDING[reply.result], None
    if finding is DeskFinding.refused and rng.random() < MONEY_SENT_SHARE:
        finding, amount = DeskFinding.money_already_sent, f"{rng.randrange(2_000, 200_000)}.00"
    wait = rng.uniform(*PICK_UP_S) * time_scale + (HUMAN_FIRST_S if task["held_by"] in human_units else 0.0)
    return Plan(task["task_id"], task["held_by"], now + wait, took_s * time_scale, finding,
                f"simulated: {reply.detail}", amount)


class DeskStaff:
    """Works every unit's tasks through the desk API. `client` talks to the console (an httpx.Client
    with its base URL; a test passes the console app's TestClient)."""

    def __init__(self, settings: Settings, engine: Engine, client: httpx.Client,
                 human_units: frozenset[str] = frozenset(), seed: int | None = None):
        self.settings, self.engine, self.client = settings, engine, client
        self.human_units = human_units
        self.seed = settings.gateway_simulated_seed if seed is None else seed
        self.time_scale = settings.gateway_simulated_time_scale
        self.rng = random.Random(f"desk-staff:{self.seed}")
        self.passwords: dict[str, str] = {}
        self.sessions: dict[str, str] = {}
        self.plans: dict[str, Plan] = {}
        self.done: set[str] = set()  # handled (or left to someone else): never planned again

    def user_of(self, unit: str) -> str:
        """The unit's simulated user, added (or given a fresh password) on first use."""
        role, _, code = unit.partition(":")
        user = f"sim.{role}.{code}"[:64] if code else f"sim.{role}"  # never WATCH_USER: no unit is "watch"
        if user not in self.passwords:
            password = secrets.token_urlsafe(18)
            with self.engine.begin() as conn:
                people.ensure_user(conn, user, unit, ROLE_OF_UNIT[role], password)
            self.passwords[user] = password
        return user

    def step(self, now: float | None = None) -> int:
        """One round: see the open tasks, plan the new ones, take and record what is due. Returns the
        outcomes recorded in this round."""
        now = time.monotonic() if now is None else now
        listed = self._call(self._watch(), "GET", "/api/desk/tasks")
        if listed is None or listed.status_code != 200:
            return 0
        open_now = {}
        for task in listed.json()["items"]:
            open_now[task["task_id"]] = task
            if task["task_id"] in self.done or task["task_id"] in self.plans:
                continue
            if task["assignee"] is not None and not task["assignee"].startswith("sim."):
                self.done.add(task["task_id"])  # a person has it
                continue
            self.plans[task["task_id"]] = plan_for(task, self.seed, self.time_scale, now, self.rng, self.human_units)
        recorded = 0
        for plan in list(self.plans.values()):
            if plan.post_at is None and plan.task_id not in open_now:
                self._forget(plan)  # closed without us (the deadline sweep, another system): nothing to do
            elif plan.post_at is None and now >= plan.take_at:
                self._take(plan, now)
            elif plan.post_at is not None and now >= plan.post_at:
                recorded += self._record(plan, now)
        self.done &= set(open_now) | set(self.plans)  # remember only what can still show up
        return recorded

    def _watch(self) -> str:
        if WATCH_USER not in self.passwords:
            password = secrets.token_urlsafe(18)
            with self.engine.begin() as conn:
                people.ensure_user(conn, WATCH_USER, "centre", "auditor", password)
            self.passwords[WATCH_USER] = password
        return WATCH_USER

    def _take(self, plan: Plan, now: float) -> None:
        answer = self._call(self.user_of(plan.unit), "POST", f"/api/desk/tasks/{plan.task_id}/take")
        if answer is not None and answer.status_code == 200:
            plan.post_at = now + plan.post_after_s
        elif answer is not None and answer.status_code in (404, 409):  # gone; or someone has it, or it closed
            self._forget(plan)
        else:  # the console is away or failed (a busy database): try again
            plan.take_at = now + RETRY_S

    def _record(self, plan: Plan, now: float) -> int:
        body = {"finding": plan.finding.value, "note": plan.note}
        if plan.amount_sent is not None:
            body["amount_sent"] = plan.amount_sent
        answer = self._call(self.user_of(plan.unit), "POST", f"/api/desk/tasks/{plan.task_id}/outcome", json=body)
        if answer is None or answer.status_code >= 500:  # 503: Kafka was slow; post again, it is recorded once
            plan.post_at = now + RETRY_S
            return 0
        self._forget(plan)
        if answer.status_code == 201:
            WORKED.labels(plan.finding.value).inc()
            return 1
        if answer.status_code not in (200, 404, 409):  # recorded before, gone: nothing to do; anything else is a bug
            log.warning("desk staff: outcome of a task answered %d", answer.status_code)
        return 0

    def _forget(self, plan: Plan) -> None:
        self.plans.pop(plan.task_id, None)
        self.done.add(plan.task_id)

    def _call(self, user: str, method: str, path: str, **kwargs) -> httpx.Response | None:
        """As this user, signing in (again) when there is no live session; None when the console is away."""
        try:
            for _ in range(2):
                if user not in self.sessions and not self._sign_in(user):
                    return None
                answer = self.client.request(method, path, headers={"Authorization": f"Bearer {self.sessions[user]}"},
                                             **kwargs)
                if answer.status_code != 401:
                    return answer
                self.sessions.pop(user, None)  # expired: once more with a new session
            return None
        except httpx.HTTPError as exc:
            log.warning("desk staff: the console does not answer (%s)", type(exc).__name__)
            return None

    def _sign_in(self, user: str) -> bool:
        answer = self.client.post("/api/desk/session", json={"user": user, "password": self.passwords[user]})
        if answer.status_code != 201:
            log.warning("desk staff: %s could not sign in (%d)", user, answer.status_code)
            return False
        self.sessions[user] = answer.json()["token"]
        return True


def run(settings: Settings, console_url: str, human_units: frozenset[str], stop: threading.Event) -> None:
    """`antifraud desk-simulator`: work the desk until stopped."""
    from oversight.db import migrate

    engine = migrate(settings)
    with httpx.Client(base_url=console_url, timeout=settings.desk_produce_timeout_s + 5) as client:
        staff = DeskStaff(settings, engine, client, human_units)
        log.info("desk staff: working every unit's tasks at %s%s", console_url,
                 f" (after {HUMAN_FIRST_S:.0f} s for {', '.join(sorted(human_units))})" if human_units else "")
        total, told, tell_at = 0, 0, time.monotonic() + LOG_EVERY_S
        while not stop.wait(POLL_S):
            total += staff.step()
            if time.monotonic() >= tell_at and total != told:
                log.info("desk staff: %d outcomes recorded through the desk API (%d since the last line), "
                         "%d tasks in hand", total, total - told, len(staff.plans))
                told, tell_at = total, time.monotonic() + LOG_EVERY_S
    engine.dispose()
