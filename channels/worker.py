"""Channel worker: carries out the actions of one channel and reports every outcome.

    actions_<channel> ──decode──> dead_letter                       (unreadable)
                      └─policy──> held set in Valkey ──(when due)──┐ (quiet hours, caps, rate)
                      └──claim──> gateway ──> outcomes  <──────────┘

One process per channel and as many as the load needs: they share the consumer group
antifraud-channel-<channel>, the Valkey claims, limits and held set. An offset is
committed (after a batch, and every second inside a slow one) only after everything the
records before it produced (outcomes, dead letters) is flushed and every hold is written
to Valkey, so a crash at any point loses nothing; the claims
(channels.claims) make the redelivery harmless. A gateway that takes parallel work (the
simulated officers and operators: `concurrency`) gets consecutive actions that many at a
time; the contact policy's reservations are atomic in Valkey, so they hold across threads.
See docs/channels.md.

    python -m channels.worker --channel sms
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from channels.claims import Claim, ClaimState, ClaimStore
from channels.dead_letters import action_dead_letter, read_action
from channels.gateways import Gateway, GatewayReply, make_gateway
from channels.gateways.base import scrub
from channels.held import HeldAction, HeldStore
from channels.metrics import DEAD_LETTERS, HELD, HELD_PENDING, OUTCOMES, SEND_SECONDS, VISITS_CARRIED
from channels.policy import ContactPolicy, Hold
from channels.visits import Verdict, VisitRecord, VisitStore, carried_outcome, decide
from streams.catalog import get_catalog
from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.dead_letters import Rejected, dead_letter
from streams.isolation import about_a_record, record_failed
from streams.kafka import consumer_config, producer_config
from streams.masking import mask
from streams.settings import Settings, get_settings
from streams.valkey import sync_client
from streams.valkey import until_valkey_answers_sync as until_valkey_answers

log = logging.getLogger("channels.worker")  # the same name when run as __main__

# line_suspension is carried out by the carriers' own consumer, not here.
CHANNELS = (Channel.sms, Channel.ai_voice, Channel.hotline_call, Channel.app_push, Channel.police_visit)
PHONE_CHANNELS = {Channel.sms, Channel.ai_voice, Channel.hotline_call, Channel.app_push}
# A batch is committed as a whole: keep its worst case well inside max.poll.interval.ms (300 s).
BATCH_BUDGET_S = 120.0
# ... and commit as it goes: a slow channel (a visit takes seconds) would otherwise hold a
# whole batch uncommitted, reported as minutes behind, and a restart would re-read all of it.
COMMIT_EVERY_S = 1.0
INTERRUPTED = ("send interrupted: the worker stopped mid-send; not repeated, so as never to contact the "
               "person twice (they may or may not have been reached)")

_encode = msgspec.json.Encoder().encode
_decode_action = msgspec.json.Decoder(Action).decode


def outcome_id_of(action: Action) -> str:
    """One outcome per action attempt; the same id on every replay."""
    return f"{action.action_id}:{action.attempt}"


HANDLED, SKIPPED, STOPPED = "handled", "skipped", "stopped"  # what became of one message


class DeliveryFailed(RuntimeError):
    """Kafka did not take a record: offsets stay uncommitted and the worker stops (redelivery heals)."""


class _Stopping(Exception):
    """Stop requested while waiting on another worker's send: leave the message for the redelivery."""


class ChannelWorker:
    def __init__(
        self,
        settings: Settings,
        channel: Channel,
        *,
        topic: str | None = None,
        group_id: str | None = None,
        gateway: Gateway | None = None,
    ):
        if channel not in CHANNELS:
            raise ValueError(f"no channel worker for {channel.value}")
        catalog = get_catalog()
        self.settings, self.channel = settings, channel
        # Overrides are for tests and one-off replays into a scratch topic; production uses the catalog.
        self.topic = topic or catalog.topic(f"actions_{channel.value}").name
        self.group_id = group_id or f"antifraud-channel-{channel.value}"
        self.outcomes_topic = catalog.topic("outcomes").name
        self.dead_letter_topic = catalog.topic("dead_letter").name
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stage = f"channel-{channel.value}"
        self.stop = threading.Event()

        valkey = sync_client(settings)
        self.claims = ClaimStore(valkey, settings.channel_claim_ttl_s)
        self.held = HeldStore(valkey, self.topic, settings.channel_send_lease_s)
        self.policy = ContactPolicy(settings, channel, valkey)
        # One officer at the door: a visit under way carries the person's other alerts (channels.visits).
        self.visits = VisitStore(valkey, settings.channel_claim_ttl_s) if channel is Channel.police_visit else None
        self.gateway = gateway or make_gateway(settings, channel)
        # The desk (channels.gateways.desk) records a task and no outcome: people report it later.
        self.hands_over = getattr(self.gateway, "hands_over", False)
        worst = self.gateway.worst_case_s()
        if worst >= settings.channel_send_lease_s:
            log.warning("%s: a send may take %.0f s, longer than channel_send_lease_s %.0f s: a slow send "
                        "could be reported as interrupted", self.stage, worst, settings.channel_send_lease_s)
        self.concurrency = max(1, self.gateway.concurrency)
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.stage) if self.concurrency > 1 else None
        self._lock = threading.Lock()  # the next-due time, set from the send threads
        per_send = max(worst, 1e-3) / self.concurrency
        self.batch_size = max(1, min(settings.channel_batch_size, int(BATCH_BUDGET_S // per_send)))
        self.producer = Producer(producer_config(settings))
        self._delivery_errors: list[str] = []
        self._next_due: float | None = None

    # ------------------------------------------------------------------------- the loop
    def run(self) -> None:
        consumer = Consumer(consumer_config(self.settings, self.group_id))
        consumer.subscribe([self.topic])
        log.info("%s: %s on %s (group %s, gateway %s, batch %d)", self.stage, self.instance, self.topic,
                 self.group_id, self.gateway.name, self.batch_size)
        try:
            while not self.stop.is_set():
                self.release_due()
                if self.hands_over:
                    self.gateway.sweep(self.deliver_outcome)
                messages = consumer.consume(self.batch_size, timeout=self._poll_timeout())
                if messages:
                    self.process_batch(consumer, messages)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
            consumer.close()
            self.producer.flush(10)
            self.gateway.close()
            log.info("%s: stopped", self.stage)

    def _poll_timeout(self) -> float:
        """Wake up for the next held action that comes due, else wait the usual poll."""
        wait = self.settings.channel_poll_s
        if self._next_due is not None:
            wait = min(wait, self._next_due - time.time())
        return max(0.01, wait)

    def process_batch(self, consumer: Consumer, messages: list) -> None:
        """In chunks of the gateway's concurrency (sent at once), in order; commits as it goes."""
        done: dict[tuple[str, int], int] = {}
        last_commit = time.monotonic()
        for start in range(0, len(messages), self.concurrency):
            chunk = messages[start:start + self.concurrency]
            # The pool's map re-raises a non-record error: the worker stops uncommitted, as one at a time.
            verdicts = list((self.pool.map if self.pool is not None else map)(self.handle_one, chunk))
            stopped = STOPPED in verdicts
            for message, verdict in zip(chunk, verdicts[: verdicts.index(STOPPED)] if stopped else verdicts):
                if verdict == HANDLED:
                    done[(message.topic(), message.partition())] = message.offset() + 1
            if stopped:
                break  # the rest stays uncommitted and is read again (the claims make that harmless)
            if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                self.commit(consumer, done)
                done, last_commit = {}, time.monotonic()
        self.commit(consumer, done)

    def handle_one(self, message) -> str:
        if self.stop.is_set():
            return STOPPED
        if message.error():
            log.warning("%s: consumer error %s", self.stage, message.error())
            return SKIPPED
        try:
            self.handle_message(message)
        except _Stopping:
            return STOPPED
        except Exception as exc:
            if not about_a_record(exc):
                raise  # Kafka or Valkey gone past every retry: stop uncommitted, the restart heals
            self.dead_letter(message, record_failed(self.stage, _where(message), exc))
        return HANDLED

    def commit(self, consumer: Consumer, done: dict[tuple[str, int], int]) -> None:
        """Commit what was carried out, once everything it produced is in Kafka."""
        self.flush()
        if not done:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in done.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partition: the next owner reads these again and the claims
            # make that harmless.
            log.warning("%s: commit failed (%s); the batch will be read again", self.stage, exc)

    def handle_message(self, message) -> None:
        action, rejected = read_action(message.value(), self.channel)
        if rejected is not None:
            self.dead_letter(message, rejected)
            return
        self.process(action, message.value(), _where(message), held=None)

    def dead_letter(self, message, rejected: Rejected) -> None:
        DEAD_LETTERS.labels(self.channel.value).inc()
        letter = action_dead_letter(message, rejected, self.stage, datetime.now(UTC),
                                    self.settings.max_event_bytes)
        log.warning("%s: dead letter %s: %s", self.stage, _where(message), rejected.detail)
        self._produce(self.dead_letter_topic, message.topic().encode(), _encode(letter))

    # ------------------------------------------------------------------ one action
    def process(self, action: Action, raw: bytes, source: str, held: HeldAction | None) -> bool:
        """Carry out one action; False when it is (or stays) held."""
        oid = outcome_id_of(action)
        existing = self._valkey(lambda: self.claims.get(oid))
        if existing is not None:
            self.resolve_existing(action, oid, existing)
            return True
        if held is None and self._valkey(lambda: self.held.contains(oid)):
            return False  # held already (a redelivery or a replay): its release carries it out
        now = time.time()
        rate_reserved = held.rate_reserved if held is not None else False
        hold = self._valkey(lambda: self.policy.decide(action, oid, now, rate_reserved))
        if hold is not None:
            self.hold(oid, raw, source, hold, again=held is not None)
            return False
        self.send(action, oid, decided_at=now)
        return True

    def send(self, action: Action, oid: str, decided_at: float) -> None:
        ours, claim = self._valkey(lambda: self.claims.claim(oid, self.instance, time.time()))
        if not ours and not self._our_own_claim(claim):
            self.resolve_existing(action, oid, claim)
            return
        if self.visits is not None:
            carrier = self.visit_under_way(action, oid)
            if carrier is not None:
                self.carried(action, oid, claim, carrier)
                return
        if self.hands_over and not _no_phone(action):  # a call with no number fails as before, not as a task
            self.hand_over(action, oid, claim)
            return
        # The instant the contact policy counted this contact: what the frequency cap and the rate
        # limit measure from, so the outcomes show their spacing exactly (not the send's later start).
        started = datetime.fromtimestamp(decided_at, UTC)
        clock = time.perf_counter()
        reply = self.call_gateway(action, oid)
        SEND_SECONDS.labels(self.channel.value).observe(time.perf_counter() - clock)
        outcome = self._outcome(action, oid, reply.result, reply.detail, started)
        # Stored before it is produced: a crash from here on re-produces it from the claim.
        final = self._valkey(lambda: self.claims.finish(oid, claim, outcome))
        if final is outcome:
            OUTCOMES.labels(self.channel.value, outcome.result.value).inc()
        log.info("%s: %s to %s -> %s", self.stage, oid, self._who(action), final.result.value)
        self._produce(self.outcomes_topic, action.person_id.encode(), _encode(final))

    def visit_under_way(self, action: Action, oid: str) -> Outcome | None:
        """The outcome of the person's visit that carries this one, or None when this one goes to the door.

        Waits while another alert's visit is under way (at most the send lease, from that visit's
        claim): a stop request waits too, as it waits for the visit being sent."""
        person = action.person_id
        while True:
            seen = self._valkey(lambda: self.visits.get(person))
            holder = self._valkey(lambda seen=seen: self.claims.get(seen.record.oid)) if seen else None
            verdict = decide(action, seen.record if seen else None, holder.record if holder else None, time.time(),
                             self.settings.channel_send_lease_s)
            if verdict is Verdict.carried:
                return holder.record.outcome
            if verdict is Verdict.alone:
                return None
            if verdict is Verdict.take:
                record = VisitRecord(oid=oid, alert_id=action.alert_id)
                if self._valkey(lambda seen=seen, record=record: self.visits.take(person, record, seen)):
                    return None
                continue  # another visit took the record meanwhile: look again
            time.sleep(0.2)

    def carried(self, action: Action, oid: str, claim: Claim, carrier: Outcome) -> None:
        """This visit's outcome is the carrying visit's: stored in its claim, then produced; nothing is sent."""
        outcome = carried_outcome(action, oid, carrier)
        final = self._valkey(lambda: self.claims.finish(oid, claim, outcome))
        if final is outcome:
            OUTCOMES.labels(self.channel.value, outcome.result.value).inc()
            VISITS_CARRIED.inc()
            self._valkey(lambda: self.policy.uncount(action.person_id, oid))  # the person had one visit, not two
        log.info("%s: %s carried by the visit %s under way for the same person -> %s (not sent)", self.stage, oid,
                 carrier.outcome_id, final.result.value)
        self._produce(self.outcomes_topic, action.person_id.encode(), _encode(final))

    def hand_over(self, action: Action, oid: str, claim: Claim) -> None:
        """Record the desk task (idempotent), then mark the claim handed: nothing goes to outcomes now."""
        self.gateway.send(action, oid)
        stands = self._valkey(lambda: self.claims.hand_over(oid, claim))
        if stands.outcome is not None:  # a finder called it interrupted meanwhile: that outcome stands
            self._produce(self.outcomes_topic, action.person_id.encode(), _encode(stands.outcome))
        log.info("%s: %s for %s handed to the desk", self.stage, oid, self._who(action))

    def deliver_outcome(self, outcome: Outcome) -> None:
        """Produce one outcome the desk decided and return once Kafka has it (raises if it did not)."""
        self._produce(self.outcomes_topic, outcome.person_id.encode(), _encode(outcome))
        self.flush()
        OUTCOMES.labels(self.channel.value, outcome.result.value).inc()

    def _our_own_claim(self, claim: Claim) -> bool:
        # Valkey took our SET but the reply was lost and the retry found it: it is still ours.
        return claim.record.state is ClaimState.sending and claim.record.owner == self.instance

    def call_gateway(self, action: Action, oid: str) -> GatewayReply:
        if _no_phone(action):
            return GatewayReply(Result.failed, "the action has no phone to reach: not sent")
        try:
            return self.gateway.send(action, oid)
        except Exception as exc:  # a gateway bug must still end in an outcome, never in a lost action
            log.exception("%s: gateway error on %s", self.stage, oid)
            return GatewayReply(Result.failed, f"gateway error: {type(exc).__name__}")

    def resolve_existing(self, action: Action, oid: str, claim: Claim) -> None:
        """The action was claimed before: produce its stored outcome, never send it again."""
        lease = self.settings.channel_send_lease_s
        while claim.record.state is ClaimState.sending:
            age = time.time() - claim.record.since
            if age >= lease and self.hands_over:
                # Recording a task contacts nobody: record it (again) rather than call it interrupted.
                self.hand_over(action, oid, claim)
                return
            if age >= lease:
                started = datetime.fromtimestamp(claim.record.since, UTC)
                interrupted = self._outcome(action, oid, Result.failed, INTERRUPTED, started)
                final = self._valkey(
                    lambda claim=claim, interrupted=interrupted: self.claims.finish(oid, claim, interrupted))
                if final is interrupted:
                    OUTCOMES.labels(self.channel.value, Result.failed.value).inc()
                    log.warning("%s: %s was interrupted mid-send (claimed by %s); not sent again",
                                self.stage, oid, claim.record.owner)
                self._produce(self.outcomes_topic, action.person_id.encode(), _encode(final))
                return
            # Another worker may be sending it right now: wait for its outcome, up to the lease.
            if self.stop.wait(min(0.2, lease - age)):
                raise _Stopping
            claim = self._valkey(lambda: self.claims.get(oid)) or claim
        if claim.record.state is ClaimState.handed:
            log.info("%s: %s was handed to the desk before: nothing to do", self.stage, oid)
            return
        log.info("%s: %s was carried out before (%s): its outcome is repeated, nothing is sent", self.stage, oid,
                 claim.record.outcome.result.value)
        self._produce(self.outcomes_topic, action.person_id.encode(), _encode(claim.record.outcome))

    def _outcome(self, action: Action, oid: str, result: Result, detail: str, started: datetime) -> Outcome:
        return Outcome(
            outcome_id=oid,
            action_id=action.action_id,
            alert_id=action.alert_id,
            person_id=action.person_id,
            channel=action.channel,
            result=result,
            started_at=started,
            finished_at=datetime.now(UTC),
            attempt=action.attempt,
            detail=scrub(detail),
        )

    # --------------------------------------------------------------------- holding
    def hold(self, oid: str, raw: bytes, source: str, hold: Hold, again: bool) -> None:
        record = HeldAction(action=raw, policy=hold.policy.value, release_at=hold.until, held_at=time.time(),
                            source=source, rate_reserved=hold.rate_reserved)
        if again:
            self._valkey(lambda: self.held.hold_again(oid, record))
        elif not self._valkey(lambda: self.held.hold_new(oid, record)):
            return
        HELD.labels(self.channel.value, hold.policy.value).inc()
        with self._lock:
            self._next_due = min(self._next_due or hold.until, hold.until)
        log.info("%s: %s held by %s until %s", self.stage, oid, hold.policy.value,
                 datetime.fromtimestamp(hold.until, UTC).isoformat(timespec="milliseconds"))

    def release_due(self) -> None:
        """Carry out the held actions that are due; called between Kafka polls."""
        taken = self._valkey(lambda: self.held.take_due(time.time(), self.batch_size))
        finished = []
        for oid, record in taken:
            if self.stop.is_set():
                break  # the lease runs out and the action comes due again
            if record is None:
                log.error("%s: held %s has no stored action; removing it", self.stage, oid)
                finished.append(oid)
                continue
            try:
                if self.process(_decode_action(record.action), record.action, record.source, held=record):
                    finished.append(oid)
            except _Stopping:
                break
            except Exception as exc:
                if not about_a_record(exc):
                    raise
                # It was read and held once, so it decoded then: a bug, kept as a dead letter, never retried
                # forever (a held action that raises on every release would stop the channel).
                self.dead_letter_held(record, record_failed(self.stage, record.source, exc))
                finished.append(oid)
        if finished:
            self.flush()  # the outcomes are durable before their held entries go
            for oid in finished:
                self._valkey(lambda oid=oid: self.held.remove(oid))
        pending, self._next_due = self._valkey(self.held.peek)
        HELD_PENDING.labels(self.channel.value).set(pending)

    def dead_letter_held(self, record: HeldAction, rejected: Rejected) -> None:
        topic, partition, offset = _coordinates(record.source)
        DEAD_LETTERS.labels(self.channel.value).inc()
        letter = dead_letter(stage=self.stage, topic=topic, partition=partition, offset=offset, value=record.action,
                             key=None, rejected=rejected, now=datetime.now(UTC),
                             max_bytes=self.settings.max_event_bytes)
        self._produce(self.dead_letter_topic, topic.encode(), _encode(letter))

    # -------------------------------------------------------------------- plumbing
    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.5)

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    def flush(self) -> None:
        while self.producer.flush(10) > 0:
            log.warning("%s: still waiting for Kafka to take %d records", self.stage, len(self.producer))
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise DeliveryFailed(f"{len(errors)} records not delivered, first: {errors[0]}")

    def _valkey(self, call):
        return until_valkey_answers(self.stage, self.settings, call)

    @staticmethod
    def _who(action: Action) -> str:
        target = action.target
        if action.channel is Channel.police_visit:
            return f"station {target.station or action.jurisdiction.station}"
        return mask(target.phone)


def _no_phone(action: Action) -> bool:
    return action.channel in PHONE_CHANNELS and not action.target.phone


def _where(message) -> str:
    return f"{message.topic()}:{message.partition()}:{message.offset()}"


def _coordinates(source: str) -> tuple[str, int, int]:
    """'topic:partition:offset' (a held action's source) -> its parts; -1 where it cannot be read."""
    head, _, offset = source.rpartition(":")
    topic, _, partition = head.rpartition(":")
    try:
        return topic, int(partition), int(offset)
    except ValueError:
        return source, -1, -1


def main(settings: Settings, channel: Channel, *, topic: str | None = None, group_id: str | None = None) -> None:
    """Run one channel worker until SIGTERM or SIGINT (what `antifraud channel-worker --channel` calls)."""
    worker = ChannelWorker(settings, channel, topic=topic, group_id=group_id)

    def _stop(signum, _frame) -> None:
        log.info("%s: %s received, finishing the current action", worker.stage, signal.Signals(signum).name)
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()


def _cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m channels.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--channel", required=True, choices=[c.value for c in CHANNELS])
    parser.add_argument("--topic", help="read this topic instead of the catalog's (tests, replays)")
    parser.add_argument("--group", help="consumer group instead of antifraud-channel-<channel>")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    main(settings, Channel(args.channel), topic=args.topic, group_id=args.group)


if __name__ == "__main__":
    _cli()
