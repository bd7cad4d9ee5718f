"""The suite's load and its oracle: a steady mixed load with known funds warnings, and what came out.

The load is built from the simulator's pieces (synthetic population, intelligence lists,
scenario message helpers) but driven here, so that the suite knows exactly which persons
must get a funds warning:

- benign traffic: resident calls and SMS, courier SMS, salaries, transfers to known payees;
- other fraud signals: long calls from listed fraud numbers, listed fraud apps installed
  (alerts and contacts, no funds warning);
- funds warnings: one transfer to a listed mule account per *funds person* (each person at
  most once, so "exactly one funds-warning alert per person" is the oracle), and, once the
  funds warning is on the alerts topic, a second transfer out of the same account: a
  transfer during an open alert is what makes escalate send a protective request to the
  bank that holds the account (streams.escalation.Rules.on_transfer), so every funds person
  must end with a bank request for that account. Sending the second transfer only after the
  alert is seen keeps that expectation true however far behind a fault left the pipeline.

The three groups of persons are disjoint, so no other traffic touches a funds person.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from confluent_kafka import Consumer, Producer, TopicPartition

import simulator.scenarios as sc
from simulator.population import Person, Population
from simulator.reference import Intel, intel_updates, location_updates, registry_updates
from simulator.traffic import CN_TZ, retimed
from streams.catalog import Catalog
from streams.contracts.reference import IntelKind
from streams.contracts.signals import BankKind, CounterpartType, ReportKind
from streams.kafka import consumer_config, producer_config
from streams.masking import mask
from streams.settings import Settings

log = logging.getLogger(__name__)

OWN_GROUP_PREFIX = "antifraud-faults-"
_encode = msgspec.json.Encoder().encode


@dataclass
class FundsCase:
    person: Person
    bank: str  # the bank that holds the person's account: where the protective request must go
    account: str
    sent_at: float = 0.0
    followup_at: float | None = None  # when the transfer during the open alert was sent
    followup_time: datetime | None = None  # its event time


class Load:
    """Reference data first, then a steady mix at `rate` messages/s until stopped."""

    def __init__(self, settings: Settings, catalog: Catalog, *, seed: int, rate: float, funds_every_s: float,
                 other_every_s: float, n_persons: int) -> None:
        self.catalog, self.rate = catalog, rate
        self.funds_every_s, self.other_every_s = funds_every_s, other_every_s
        self.rng = random.Random(f"faults-load:{seed}")
        self.population = Population.generate(n_persons, seed)
        self.intel = Intel(300, seed)
        # Event ids carry the run: a second suite run on the same broker is never a duplicate.
        self.ids = sc.EventIds(f"f{seed}r{uuid.uuid4().hex[:6]}")
        self.producer = Producer(producer_config(settings, **{"message.timeout.ms": 300_000, "log_level": 2}))
        self.topics = {tid: spec.name for tid, spec in catalog.topics.items() if spec.kind == "input"}
        registered = [p for p in self.population if p.phone_registered]
        # Disjoint roles: a third of the residents may be funds persons, a sixth other victims.
        cut1, cut2 = len(registered) // 3, len(registered) // 2
        self.funds_pool = registered[:cut1]
        self.others = registered[cut1:cut2]
        self.benign = registered[cut2:]
        self.mules = [e for e in self.intel.entries
                      if e.kind is IntelKind.mule_account and e.live and e.confidence >= 0.7 and e.ttl_days is None]
        self.fraud_numbers = [e for e in self.intel.entries
                              if e.kind is IntelKind.fraud_number and e.live and e.confidence >= 0.7]
        self.apks = [e for e in self.intel.entries if e.kind is IntelKind.fraud_apk and e.live and e.confidence >= 0.7]
        if not self.mules:
            raise RuntimeError("the seeded intelligence has no live mule account of confidence >= 0.7")
        self.funds: dict[str, FundsCase] = {}  # account token -> case
        self.sent = defaultdict(int)  # kind -> messages delivered
        self.failed = 0
        self._followups: list[str] = []  # account tokens whose funds warning was seen
        self._lock = threading.Lock()
        self.stop = threading.Event()
        # Funds warnings begin once the pipeline is warm (set by the suite after its warm-up): at a
        # cold start escalate has been seen to read a transfer before the alert it falls under
        # (docs/reliability.md, "Fault suite"), which is not what this suite measures.
        self.funds_on = threading.Event()
        self.t0 = time.monotonic()  # the suite's clock, for the evidence
        self.thread: threading.Thread | None = None

    # ---------------------------------------------------------------- sending
    def _send(self, topic_id: str, key: bytes | None, value, kind: str) -> None:
        def delivered(err, _msg) -> None:
            if err is not None:
                self.failed += 1
                log.warning("faults load: a %s message was not delivered: %s", kind, err)
            else:
                self.sent[kind] += 1

        payload = value if isinstance(value, bytes) else _encode(value)
        while True:
            try:
                self.producer.produce(self.topics[topic_id], payload, key, on_delivery=delivered)
                return
            except BufferError:  # local queue full (the broker is down): wait for deliveries
                self.producer.poll(0.1)

    def seed_reference(self) -> int:
        """Registry of every resident and the intelligence lists; returns messages sent (flushed)."""
        now = datetime.now(CN_TZ)
        n = 0
        for update in intel_updates(self.intel, now, self.ids.namespace):
            self._send("in_intel", f"{update.kind.value}:{update.value}".encode(), update, "reference")
            n += 1
        for update in [*location_updates(self.population.city, now, self.ids.namespace),
                       *registry_updates(self.population, now, self.ids.namespace)]:
            self._send("in_registry", update.identifier.encode(), update, "reference")
            n += 1
        left = self.producer.flush(60)
        if left:
            raise RuntimeError(f"{left} reference messages were not delivered")
        return n

    # ---------------------------------------------------------------- the mix
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="faults-load", daemon=True)
        self.thread.start()

    def finish(self, timeout: float = 60.0) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
        self.producer.flush(timeout)

    def funds_alert_seen(self, account: str) -> None:
        """Called by the observer for each funds warning: the follow-up transfer is due."""
        with self._lock:
            case = self.funds.get(account)
            if case is not None and case.followup_at is None and account not in self._followups:
                self._followups.append(account)

    def send_due_followups(self) -> None:
        with self._lock:
            due, self._followups = self._followups, []
        for account in due:
            case = self.funds[account]
            payee, payee_bank = sc.fresh_account(self.rng)
            case.followup_time = datetime.now(CN_TZ)
            offer = sc._bank(self.ids, case.person, next(a for a in case.person.accounts if a.token == account),
                             case.followup_time, BankKind.transfer_out, counterparty=payee,
                             counterparty_bank=payee_bank, amount=sc.money(self.rng, 1_000, 20_000))
            self._send(offer.topic_id, offer.key, offer.value, "funds_followup")
            case.followup_at = time.monotonic()

    def _run(self) -> None:
        start = time.monotonic()
        sent = 0
        next_funds, next_other = start + 1.0, start + 2.0
        queue: list[sc.Offer] = []
        while not self.stop.is_set():
            now = time.monotonic()
            self.send_due_followups()
            if now >= next_funds:
                if self.funds_on.is_set():
                    self._funds_transfer()
                next_funds += self.funds_every_s
            if now >= next_other:
                queue += self._other_fraud()
                next_other += self.other_every_s
            behind = now - (start + sent / self.rate)
            if behind < 0:
                self.stop.wait(min(-behind, 0.05))
                continue
            for _ in range(min(int(behind * self.rate) + 1, 200)):
                if not queue:
                    queue += self._benign()
                offer = queue.pop(0)
                self._send(offer.topic_id, offer.key, retimed(offer.value, datetime.now(CN_TZ)), "benign")
                sent += 1
            self.producer.poll(0)
        self.send_due_followups()

    def _funds_transfer(self) -> None:
        if len(self.funds) >= len(self.funds_pool):
            return  # every funds person used once: no second funds warning for anybody
        person = self.funds_pool[len(self.funds)]
        account = person.accounts[0]
        mule = self.mules[self.rng.randrange(len(self.mules))]
        case = FundsCase(person, account.bank, account.token, sent_at=time.monotonic())
        with self._lock:
            self.funds[account.token] = case
        at = datetime.now(CN_TZ)
        offer = sc._bank(self.ids, person, account, at, BankKind.transfer_out, counterparty=mule.value,
                         counterparty_bank=mule.bank, amount=sc.money(self.rng, 5_000, 50_000), new_payee=True)
        self._send(offer.topic_id, offer.key, offer.value, "funds_transfer")

    def _other_fraud(self) -> list[sc.Offer]:
        p = self.others[self.rng.randrange(len(self.others))]
        at = datetime.now(CN_TZ)
        if self.apks and self.rng.random() < 0.4:
            apk = self.apks[self.rng.randrange(len(self.apks))]
            return [sc.app_report(self.ids, p, at, ReportKind.fraud_app_installed, apk=apk.value)]
        number = self.fraud_numbers[self.rng.randrange(len(self.fraud_numbers))]
        return [sc._call(self.ids, p, at, number.value, number.counterpart_type or CounterpartType.international,
                         duration_s=self.rng.randint(600, 2400))]

    def _benign(self) -> list[sc.Offer]:
        rng, pick = self.rng, lambda: self.benign[self.rng.randrange(len(self.benign))]
        at = datetime.now(CN_TZ)
        draw = rng.random()
        if draw < 0.35:
            return sc.resident_call(pick(), pick(), at, rng, self.ids).offers
        if draw < 0.55:
            return sc.resident_sms(pick(), pick(), at, rng, self.ids).offers
        if draw < 0.75:
            return sc.delivery_sms(pick(), at, rng, self.ids).offers
        if draw < 0.85:
            return sc.salary(pick(), at, rng, self.ids).offers
        return sc.known_payee_transfer(pick(), pick(), at, rng, self.ids).offers


# -------------------------------------------------------------------------------- observer
@dataclass
class Seen:
    """Every record of the result topics, as read from the broker (committed records only)."""

    alerts: list[dict] = field(default_factory=list)
    outcomes: list[tuple[tuple[str, int], bytes]] = field(default_factory=list)  # ((action_id, attempt), value)
    bank_requests: list[tuple[str, dict, bytes]] = field(default_factory=list)  # (topic, request, value)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)


class Observer:
    """Tails alerts, outcomes and every bank's request topic from the start; tells the load of funds warnings."""

    def __init__(self, settings: Settings, catalog: Catalog, load: Load) -> None:
        self.load = load
        self.alerts_topic = catalog.topic("alerts").name
        self.outcomes_topic = catalog.topic("outcomes").name
        self.bank_topics = [spec.name for tid, spec in catalog.topics.items() if tid.startswith("bank_requests_")]
        self.topics = [self.alerts_topic, self.outcomes_topic, *self.bank_topics]
        self.consumer = Consumer(consumer_config(settings, group_id=f"{OWN_GROUP_PREFIX}observer-{uuid.uuid4().hex[:8]}",
                                                 **{"log_level": 2}))
        meta = self.consumer.list_topics(timeout=30).topics
        self.consumer.assign([TopicPartition(t, p, 0) for t in self.topics for p in meta[t].partitions])
        self.seen = Seen()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="faults-observer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(500, timeout=0.5):
                if msg.error() is not None:
                    continue  # broker restarts show up here; the client reconnects by itself
                self._take(msg)

    def _take(self, msg) -> None:
        topic, value = msg.topic(), msg.value()
        with self.lock:
            self.seen.positions[(topic, msg.partition())] = msg.offset() + 1
            if value is None:
                return
            record = json.loads(value)
            if topic == self.alerts_topic:
                self.seen.alerts.append({k: record.get(k) for k in ("alert_id", "version", "tier", "person_id")}
                                        | {"accounts": [(a["bank"], a["account"]) for a in record.get("accounts", [])]})
                if record.get("tier") == "funds_warning":
                    for a in record.get("accounts", []):
                        self.load.funds_alert_seen(a["account"])
            elif topic == self.outcomes_topic:
                self.seen.outcomes.append(((record["action_id"], record["attempt"]), value))
            else:
                self.seen.bank_requests.append(
                    (topic, {k: record.get(k) for k in ("request_id", "bank", "account", "kind", "reason_code")}, value))

    def caught_up(self, ends: dict[tuple[str, int], int]) -> bool:
        with self.lock:
            return all(self.seen.positions.get(tp, 0) >= end for tp, end in ends.items() if tp[0] in self.topics and end)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


# -------------------------------------------------------------------------------- oracle
def judge(load: Load, seen: Seen) -> dict:
    """The suite's verdict: lost and duplicate alerts, contacts and bank requests, with the records."""
    funds_by_account: dict[str, set[str]] = defaultdict(set)
    versions = defaultdict(int)
    for a in seen.alerts:
        versions[(a["alert_id"], a["version"])] += 1
        if a["tier"] == "funds_warning":
            for _bank, account in a["accounts"]:
                funds_by_account[account].add(a["alert_id"])
    cases = list(load.funds.values())
    lost_alerts = [c for c in cases if not funds_by_account.get(c.account)]
    extra_funds = {c.account: sorted(funds_by_account[c.account]) for c in cases
                   if len(funds_by_account.get(c.account, ())) > 1}
    dup_alerts = sorted(k for k, n in versions.items() if n > 1)

    by_attempt: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    for key, value in seen.outcomes:
        by_attempt[key].append(value)
    # Several records of one (action_id, attempt): byte-identical ones are the stored outcome produced
    # again (a redelivery answered from the claim: nobody was contacted again); different ones are
    # two sends, i.e. a citizen contacted twice.
    dup_contacts = sorted(k for k, vs in by_attempt.items() if len(set(vs)) > 1)
    repeated_outcomes = sorted(k for k, vs in by_attempt.items() if len(vs) > 1 and len(set(vs)) == 1)

    requests = defaultdict(list)
    applied_accounts: dict[str, set[str]] = defaultdict(set)  # account -> banks that got an apply request
    for _topic, req, value in seen.bank_requests:
        requests[req["request_id"]].append(value)
        if req.get("kind") == "apply":
            applied_accounts[req["account"]].add(req["bank"])
    dup_requests = sorted(r for r, vs in requests.items() if len(vs) > 1)
    # A transfer made after the funds warning closed as dissuaded needs no request; one made
    # before, even if escalate reads it after the closing, does (Rules.on_transfer goes by the
    # transfer's own time).
    dissuaded_at: dict[str, datetime] = {}
    for _key, value in seen.outcomes:
        o = json.loads(value)
        if o.get("result") == "dissuaded":
            at = datetime.fromisoformat(o["finished_at"].replace("Z", "+00:00"))
            dissuaded_at[o["alert_id"]] = min(at, dissuaded_at.get(o["alert_id"], at))
    funds_alert_of = {account: min(ids) for account, ids in funds_by_account.items() if ids}

    def closed_at(c: FundsCase) -> datetime | None:
        return dissuaded_at.get(funds_alert_of.get(c.account, ""))

    due = [c for c in cases if c.followup_at is not None
           and not (closed_at(c) is not None and closed_at(c) <= c.followup_time)]
    lost_requests = [c for c in due if c.bank not in applied_accounts.get(c.account, set())]

    def case_ref(c: FundsCase) -> dict:
        return {"person_id": c.person.person_id, "bank": c.bank, "account": mask(c.account),
                "sent_s": round(c.sent_at - load.t0, 1),
                "followup_s": round(c.followup_at - load.t0, 1) if c.followup_at else None}

    return {
        "funds_warnings": {"expected": len(cases), "raised": sum(1 for c in cases if funds_by_account.get(c.account)),
                           "lost": len(lost_alerts), "more_than_one": len(extra_funds)},
        "alerts": {"records": len(seen.alerts), "distinct": len(versions), "duplicate_records": len(dup_alerts)},
        "contacts": {"outcome_records": len(seen.outcomes), "attempts": len(by_attempt),
                     "duplicate_contacts": len(dup_contacts), "outcome_produced_again": len(repeated_outcomes)},
        "bank_requests": {"records": len(seen.bank_requests), "distinct": len(requests), "expected_accounts": len(due),
                          "lost": len(lost_requests), "duplicates": len(dup_requests),
                          "duplicate_records_identical": sum(1 for r in dup_requests if len(set(requests[r])) == 1)},
        "sent": dict(load.sent), "undelivered": load.failed,
        "evidence": {  # which records, for a finding (accounts masked)
            "lost_funds_warnings": [case_ref(c) for c in lost_alerts][:50],
            "persons_with_more_than_one_funds_warning": [{"account": mask(k), "alert_ids": v}
                                                         for k, v in list(extra_funds.items())[:50]],
            "duplicate_alerts": [list(k) for k in dup_alerts[:50]],
            "duplicate_contacts": [list(k) for k in dup_contacts[:50]],
            "lost_bank_requests": [case_ref(c) for c in lost_requests][:50],
            "duplicate_bank_requests": dup_requests[:50],
        },
    }
