"""One record never stops a stage; anything else stops the process.

A record whose handling raises is a bug met on that record: it is dead-lettered
(`internal_error`, with the stage, the exception class and a masked message) and the
stage goes on. A micro-batch that raises is run again one record at a time, so only
the record that raises alone is dead-lettered. The records handled before the failure
are handled again: every stage is idempotent (ingest's dedup claims are owned by the
record's offset, enrich is a pure function of its input, the reference writes keep the
newest event_time, correlate skips event ids it has seen, route and escalate claim a
Valkey slot per action).

What is not about a record (the broker or Valkey gone past every retry, memory
exhausted, a bug in the loop itself) is re-raised: dead-lettering every record would
empty the stage into the dead-letter topic. A Faust agent that ends that way stops its
worker process, non-zero (`stops_worker_on_crash`), so the supervisor restarts it: Faust's
default keeps a crashed agent's worker alive and its partitions unread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import msgspec
import redis
from aiokafka.errors import KafkaError as AIOKafkaError
from confluent_kafka import KafkaException
from prometheus_client import Counter

from streams.dead_letters import Rejected, internal_error, of_faust_message
from streams.masking import mask_text
from streams.process_exit import exit_after, request_exit_code
from streams.valkey import VALKEY_OUTAGE_ERRORS

log = logging.getLogger(__name__)

INTERNAL_ERRORS = Counter(
    "antifraud_internal_errors_total",
    "Records dead-lettered because handling them raised (a bug), by stage and exception class",
    ["stage", "error"],
)
_ENCODE = msgspec.json.Encoder().encode
EXIT_AFTER_CRASH = 70  # EX_SOFTWARE: the code a worker ends with after an agent, timer or task crashed
# Faust's own stop after a crash; measured, it hangs in the consumer's stop after leaving the group
# (tests/agents/test_agent_crash.py), so the process ends itself then: offsets are not committed
# past the crash, and the restarted worker reads the records again (every stage is idempotent).
CRASH_GRACE_S = 10.0
CRASH_FLUSH_S = 5.0  # of CRASH_GRACE_S: the producer's flush before Faust's stop


# What is never a record's fault: the Kafka clients' errors (after their own retries), memory, and
# any Valkey error, not only an outage: a refusal (out of memory, a read-only replica) would
# otherwise fail every record in turn and empty the stage into the dead-letter topic.
INFRASTRUCTURE_ERRORS = (MemoryError, redis.RedisError, *VALKEY_OUTAGE_ERRORS, AIOKafkaError, KafkaException)


def about_a_record(exc: BaseException) -> bool:
    """True if the exception can be blamed on the record being handled (a bug it triggers)."""
    return isinstance(exc, Exception) and not isinstance(exc, INFRASTRUCTURE_ERRORS)


def record_failed(stage: str, where: str, exc: BaseException) -> Rejected:
    """Count and log a record the stage failed on; the Rejected to dead-letter it with."""
    INTERNAL_ERRORS.labels(stage, type(exc).__name__).inc()
    # The frames (code lines, never values) and a masked message: enough to fix the bug.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s: record %s dead-lettered (internal_error): %s: %s\n%s", stage, where, type(exc).__name__,
              mask_text(exc), frames)
    return internal_error(stage, exc)


def faust_dead_letters(stage: str, topic, max_bytes: int):
    """The `dead_letter` callback of a Faust stage: the record, as received, to the dead-letter topic."""

    async def send(event, rejected: Rejected) -> None:
        letter = of_faust_message(stage, event.message, rejected, datetime.now(UTC), max_bytes)
        await topic.send(key=stage.encode(), value=_ENCODE(letter))

    return send


def where_of(event) -> str:
    message = event.message
    return f"{message.topic}:{message.partition}:{message.offset}"


async def isolated(
    stage: str,
    batch: Sequence,
    handle: Callable[[Sequence], Awaitable[None]],
    dead_letter: Callable[[object, Rejected], Awaitable[None]],
) -> None:
    """`handle(batch)`; if it raises for a record, again one record at a time, dead-lettering each that raises."""
    try:
        await handle(batch)
        return
    except Exception as exc:
        if not about_a_record(exc):
            raise
        if len(batch) == 1:
            await dead_letter(batch[0], record_failed(stage, where_of(batch[0]), exc))
            return
        log.warning("%s: a batch of %d raised %s; handling it record by record", stage, len(batch),
                    type(exc).__name__)
    for event in batch:
        try:
            await handle([event])
        except Exception as exc:
            if not about_a_record(exc):
                raise
            await dead_letter(event, record_failed(stage, where_of(event), exc))


def stops_worker_on_crash(app):
    """Wrap a Faust agent's body, or a timer or task: an exception that ends it stops the whole worker.

    Faust's default logs a crashed agent and keeps its worker alive, with the agent's
    partitions assigned and never read again; a timer or task that raises just stops, silently
    (escalation deadlines would never fire). Here `app.crash` stops the worker, which exits
    non-zero, and the supervisor restarts it. Should that stop hang (it does, measured in
    tests/agents/test_agent_crash.py), the process ends itself after CRASH_GRACE_S.
    Cancellation is how Faust stops or rebalances an agent: it passes through untouched.

        @app.agent(topic, name="ingest")
        @stops_worker_on_crash(app)
        async def ingest(stream): ...
    """

    def wrap(fun):
        @functools.wraps(fun)
        async def body(*args):
            try:
                await fun(*args)
            except (asyncio.CancelledError, GeneratorExit):
                # Cancelled: Faust stops or rebalances the agent. GeneratorExit: the collector closes
                # the coroutine of a worker already stopping (seen after its loop closed).
                raise
            except BaseException as exc:
                crash_worker(app, fun.__name__, exc)
                raise

        body.stops_worker_on_crash = True  # what a test checks every stage's agent for
        return body

    return wrap


def crash_worker(app, name: str, exc: BaseException, exit_code: int = EXIT_AFTER_CRASH) -> None:
    """Stop the worker (non-zero) so that it is restarted; end the process if Faust's stop hangs.

    `exit_code` is the code the process ends with (streams.process_exit), read by the supervisor.
    """
    log.critical("agent %s crashed (%s: %s): stopping the worker so that it is restarted", name,
                 type(exc).__name__, mask_text(exc))
    request_exit_code(exit_code)
    exit_after(CRASH_GRACE_S, exit_code, f"{name} crashed")
    # Not awaited here: stopping the app waits for this agent's task, which must end first.
    asyncio.ensure_future(_flush_then_crash(app, exc))


async def _flush_then_crash(app, exc: BaseException) -> None:
    # Faust holds table changelog writes in its producer buffer and drops them when it stops after a
    # crash ("Cannot flush: Producer not Running"), while the stage's own output records were already
    # sent: the restarted worker, its table short of those writes, produced a record again (an alert
    # twice, in the fault suite). So the writes go out first, while the producer still runs.
    try:
        await asyncio.wait_for(app.producer.flush(), CRASH_FLUSH_S)
    except Exception as flush_error:  # a broker that does not answer: the crash must go on regardless
        log.warning("before stopping: the producer did not flush (%s)", type(flush_error).__name__)
    await app.crash(exc)
