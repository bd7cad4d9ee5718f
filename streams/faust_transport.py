"""Faust's aiokafka transport: committed reads, two Faust races closed, record-batch sends.

Committed reads: Faust reads uncommitted records unless it runs exactly-once itself; a
feed's transactional producer may abort, and what it aborted never happened, so the
worker's consumer reads committed records only (TunedConsumerThread).

Races: records fetched around the end of a rebalance were lost, by Faust's live set of
active partitions (TunedConsumerThread.getmany), by its resume before the seek
(TunedConsumer), and by aiokafka's seek to the commits, which passes over a partition the
group never committed (`seek_to_committed`); tests/streams/test_faust_transport.py.

Gaps: Faust takes a jump in a partition's offsets for records the broker does not have
(transaction markers, aborted or compacted records) and commits past it. Records skipped by
a rebalance race look the same, and were lost that way: a fault run lost 10-16 records per
partition after a worker kill, committed past in one step (docs/reliability.md). After a
seek, the last record read is taken to be the one before the seek offset, so that a missing
record at the offset itself is a jump too (Faust took the offset as read). So a jump
is checked against the broker (TunedConsumer._add_gap): if records were really skipped, the
jump is not taken as a gap (no commit passes them) and the worker stops so that it is
restarted and reads them again; every stage is idempotent.

Stalls: a rebalance can also leave a quiet partition's last records unread and uncommitted,
and no later record exposes them as a gap (a fault run's drain never ended:
antifraud.in.app-report[3] committed 5, end 6, both workers idle). So a worker that holds
nothing of a stream partition whose commit stays behind its end rereads it from the commit
(TunedConsumer._reread_stalled_partitions). A reread is safe where a restart was not (one
restarted a worker in the middle of its reference load): every stage is idempotent.

Record batches: `send_record_batches` queues a micro-batch's records for a partition as
one batch (streams.outbox): one call instead of one send (and one future) per record.

Registered as the `tunedkafka://` scheme.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaError, TopicPartition
from faust.transport.consumer import ensure_TP, ensure_TPset
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

from streams.catalog import get_catalog
from streams.isolation import crash_worker
from streams.process_exit import EXIT_TO_REREAD
from streams.settings import get_settings

SCHEME = "tunedkafka"
log = logging.getLogger(__name__)


class SkippedRecords(RuntimeError):
    """Records a stream partition never delivered were about to be committed past."""


@functools.lru_cache(maxsize=1)
def compacted_topics() -> frozenset[str]:
    catalog = get_catalog()
    return frozenset(spec.name for spec in catalog.topics.values()
                     if "compact" in (spec.cleanup_policy or catalog.defaults.cleanup_policy))


STALL_CHECK_S = 5.0  # how often a worker looks for stream partitions it holds nothing of, behind their end


class GapCheck:
    """Does a partition hold committed records in [first, end)? One reader, reused, off the event loop."""

    def __init__(self, bootstrap: str) -> None:
        self._reader = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "antifraud-gap-check",
                                      "enable.auto.commit": False, "isolation.level": "read_committed",
                                      "enable.partition.eof": True})
        self._lock = threading.Lock()
        self._bootstrap = bootstrap
        self._group_reader: KafkaConsumer | None = None

    def records_in(self, topic: str, partition: int, first: int, end: int, timeout_s: float = 10.0) -> bool:
        with self._lock:
            self._reader.assign([TopicPartition(topic, partition, first)])
            deadline = time.monotonic() + timeout_s
            try:
                while (left := deadline - time.monotonic()) > 0:
                    message = self._reader.poll(left)
                    if message is None:
                        break
                    if message.error() is None:
                        return message.offset() < end
                    if message.error().code() == KafkaError._PARTITION_EOF:  # nothing (more) to read
                        return False
                raise TimeoutError(f"no answer on {topic}[{partition}] from offset {first} in {timeout_s:.0f} s")
            finally:
                self._reader.unassign()

    def positions(self, group: str, tps: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
        """For each (topic, partition): where the group reads from (its commit, else the log start) and the end."""
        with self._lock:
            if self._group_reader is None:  # asks for the group's commits only: never joins it
                self._group_reader = KafkaConsumer({"bootstrap.servers": self._bootstrap, "group.id": group,
                                                    "enable.auto.commit": False, "isolation.level": "read_committed"})
            out = {}
            for tp in self._group_reader.committed([TopicPartition(t, p) for t, p in tps], timeout=10):
                start, end = self._group_reader.get_watermark_offsets(tp, timeout=10, cached=False)
                out[(tp.topic, tp.partition)] = (tp.offset if tp.offset >= 0 else start, end)
            return out

    def close(self) -> None:
        self._reader.close()
        if self._group_reader is not None:
            self._group_reader.close()


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka when the consumer starts and builds its fetcher.
        consumer._isolation_level = "read_committed"
        return consumer

    async def getmany(self, active_partitions, timeout: float):
        # Faust hands over its live set of active partitions, which the fetch (up to 1 s, in
        # this thread) reads while Faust pauses partitions; aiokafka reads an empty set as
        # "every partition". So a fetch in flight when recovery paused the last changelog
        # drained the stream partitions too, and Faust dropped what it had not asked for:
        # lost records (docs/performance.md). A copy asks for exactly what was active.
        if active_partitions is not None:
            active_partitions = frozenset(active_partitions)
            if not active_partitions:
                return {}
        return await super().getmany(active_partitions, timeout)

    async def seek_to_committed(self):
        return await self.call_thread(seek_to_committed, self._ensure_consumer(), self.consumer._is_changelog_tp,
                                      self.consumer.app.conf.consumer_auto_offset_reset)


async def seek_to_committed(consumer, is_changelog, auto_offset_reset: str = "earliest") -> dict:
    """aiokafka's seek_to_committed, and a seek for the stream partitions it leaves where they are.

    aiokafka seeks only partitions whose commit is above 0, and Faust relies on this seek after
    records it fetched and then dropped (fetched while its flow was stopped, or during a new
    rebalance). A partition the group never committed kept its fetch position past them: a
    fault run's worker sat on 688 unread registry records, and a later record would have been
    committed past them. Changelogs are left alone: Faust's recovery seeks them itself.
    """
    committed = await consumer.seek_to_committed()
    never = []
    for tp, offset in committed.items():
        if offset or is_changelog(tp):
            continue
        if offset == 0:
            consumer.seek(tp, 0)
        else:
            never.append(tp)
    if never:  # where the group would start reading them
        await (consumer.seek_to_end if auto_offset_reset == "latest" else consumer.seek_to_beginning)(*never)
    return committed


class TunedConsumer(faust_aiokafka.Consumer):
    """Faust's consumer with the fetch wait above, and stream partitions resumed only after the seek.

    At the end of a rebalance Faust's recovery resumes the stream partitions, awaits the
    seek to the committed offsets, then clears the streams' queues (`flow_control.resume`)
    and calls `resume_flow`. The flow is already active by then (it read the changelogs),
    so records fetched while the seek is awaited are handed to the streams, which moves
    each partition's read offset past them, and are then cleared unprocessed; the fetch
    after the seek drops them as already read. They were never processed, and the
    partition's commit stopped at the first of them until the next rebalance (found by
    the bench: docs/performance.md). So a stream partition Faust resumes stays paused until
    `resume_flow`, which Faust calls right after it clears the queues: nothing is fetched
    for it before the seek, so nothing can be cleared.
    """

    _resume_deferred: frozenset = frozenset()

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps) -> None:
        # Faust resumes stream partitions only at the end of a rebalance (changelogs and
        # standbys during recovery, which is not affected).
        tps = ensure_TPset(tps)
        streams = {tp for tp in tps if not self._is_changelog_tp(tp)}
        self._resume_deferred |= streams
        self._buffered_partitions.difference_update(streams)
        super().resume_partitions(tps - streams)

    def resume_flow(self) -> None:
        super().resume_flow()
        deferred, self._resume_deferred = self._resume_deferred, frozenset()
        if deferred:
            super().resume_partitions(deferred & self.assignment())

    def on_buffer_full(self, tp) -> None:
        # A full stream buffer takes a partition out of the active set and puts it back when
        # it drains: that must not resume a deferred partition early.
        if tp not in self._resume_deferred:
            super().on_buffer_full(tp)

    def on_buffer_drop(self, tp) -> None:
        if tp not in self._resume_deferred:
            super().on_buffer_drop(tp)

    async def on_partitions_assigned(self, assigned, generation_id: int = 0) -> None:
        # A new assignment pauses and resumes partitions itself: a deferral from before it is void.
        self._resume_deferred = frozenset()
        await super().on_partitions_assigned(assigned, generation_id)

    # Faust keeps the offset it seeks to (a commit: the next record to read) as the partition's
    # read offset, which its gap check takes for the last record read: a record dropped at that
    # very offset, followed by the next one, looked contiguous and was committed past. After a
    # seek of a stream partition the last record read is the one before.
    async def perform_seek(self) -> None:
        await super().perform_seek()
        for tp in self.assignment():
            self._read_before(tp)

    async def seek(self, partition, offset: int) -> None:
        await super().seek(partition, offset)
        self._read_before(ensure_TP(partition))

    def _read_before(self, tp) -> None:
        offset = self._read_offset.get(tp)
        if offset and not self._is_changelog_tp(tp):  # changelogs: no gap check, recovery keeps its own offsets
            self._read_offset[tp] = offset - 1

    _gap_check: GapCheck | None = None

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        # Faust calls this when the message at offset_to follows offset_from - 1 (the read offset).
        if tp.topic in compacted_topics():  # compaction leaves gaps by design: checking each would slow recovery
            await super()._add_gap(tp, offset_from, offset_to)
            return
        if self._gap_check is None:
            self._gap_check = GapCheck(get_settings().kafka_bootstrap_servers)
        try:
            skipped = await asyncio.to_thread(self._gap_check.records_in, tp.topic, tp.partition, offset_from,
                                              offset_to)
        except Exception as exc:  # the broker did not say: an exception here would end the fetcher, silently
            log.critical("%s[%d]: could not tell whether records %d..%d exist (%s: %s): stopping the worker so "
                         "that it is restarted and reads from its last commit", tp.topic, tp.partition, offset_from,
                         offset_to - 1, type(exc).__name__, exc)
            skipped = True
        else:
            if not skipped:  # markers, aborted or compacted records: a real gap
                await super()._add_gap(tp, offset_from, offset_to)
                return
            log.critical("%s[%d]: records %d..%d were never delivered to the stream (a rebalance race): stopping "
                         "the worker so that it is restarted and reads them again", tp.topic, tp.partition,
                         offset_from, offset_to - 1)
        # Not registered as a gap, so no commit passes the skipped records; the restart reads them.
        crash_worker(self.app, "consumer", SkippedRecords(f"{tp.topic}[{tp.partition}] {offset_from}..{offset_to - 1}"),
                     exit_code=EXIT_TO_REREAD)
        # Nothing more goes to the streams: each record handled from here on is work the restart
        # does again, with table writes the stop may drop. Faust's stop cancels this wait.
        await asyncio.Event().wait()

    _stalled_since: dict = {}  # (generation, tp, where the group reads from, read offset) -> first seen idle

    def _holds_records_of(self, tp) -> bool:
        """In hand: fetched and due to the streams, queued for one, taken by one and unacknowledged, or acknowledged and not committed."""
        # Acked messages stay in Faust's unacked set when they were below the commit (a redelivery).
        if self._acked.get(tp) or any(message.tp == tp and not message.acked for message in list(self._unacked_messages)):
            return True
        if self._fetched_for_streams(tp):
            return True
        return any(event.message.tp == tp for channel in self.app.topics._tp_index.get(tp, ())
                   for event in channel.queue._queue)

    def _fetched_for_streams(self, tp) -> bool:
        """aiokafka's fetcher holds records of `tp` that Faust will take: the partition is active, or out only while its stream's buffer is full.

        A busy worker (a registry load of 240,000 records) left a partition's fetched records
        there for over 20 s, and the net reread it: the seek under that fetch crashed aiokafka's
        fetcher (KeyError on the partition). A partition paused otherwise may be one a rebalance
        never resumed, with its position past unread records: the net must still see it.
        """
        if tp not in self._get_active_partitions() and tp not in self._buffered_partitions:
            return False
        consumer = getattr(self._thread, "_consumer", None)
        fetched = getattr(getattr(consumer, "_fetcher", None), "_records", None) or {}
        return tp in fetched  # Faust's TP and aiokafka's TopicPartition are equal tuples

    @Service.timer(STALL_CHECK_S)
    async def _reread_stalled_partitions(self) -> None:
        """Reread from the commit a stream partition the worker holds nothing of while its end stays ahead.

        Only while no rebalance or recovery runs and the flow is on; the state must hold, unchanged,
        for `stream_stall_s`, and the broker must show real records past the commit (not only
        transaction markers or aborted records).
        """
        app = self.app
        if app.rebalancing or app.in_recovery or not self.flow_active or not app.flow_control.is_active():
            self._stalled_since = {}
            return
        tps = [tp for tp in self.assignment() if not self._is_changelog_tp(tp)
               and app.topics.acks_enabled_for(tp.topic) and not self._holds_records_of(tp)]
        if not tps:
            self._stalled_since = {}
            return
        if self._gap_check is None:
            self._gap_check = GapCheck(get_settings().kafka_bootstrap_servers)
        try:
            positions = await asyncio.to_thread(self._gap_check.positions, app.conf.id,
                                                [(tp.topic, tp.partition) for tp in tps])
        except Exception as exc:  # the broker is restarting, say: look again next time
            log.warning("stall check: no positions from the broker (%s)", type(exc).__name__)
            return
        now, generation, stall_s = time.monotonic(), app.consumer_generation_id, get_settings().stream_stall_s
        since = {}
        for tp in tps:
            start, end = positions.get((tp.topic, tp.partition), (0, 0))
            if start < end and not self._holds_records_of(tp):  # again: the broker's answer took an await
                key = (generation, tp, start, self._read_offset.get(tp))
                since[key] = self._stalled_since.get(key, now)
        self._stalled_since = since
        for (_, tp, start, read_offset), first in list(since.items()):
            end = positions[(tp.topic, tp.partition)][1]
            if now - first < stall_s:
                continue
            try:
                unread = await asyncio.to_thread(self._gap_check.records_in, tp.topic, tp.partition, start, end)
            except Exception as exc:
                log.warning("stall check: %s[%d] unanswered (%s)", tp.topic, tp.partition, type(exc).__name__)
                continue
            if not unread or app.rebalancing or generation != app.consumer_generation_id:
                continue  # only markers and aborted records past the commit, or the assignment moved on
            paused = tp not in self._get_active_partitions()
            log.error("%s[%d]: records %d..%d unread for %.0f s while the worker held nothing of the partition "
                      "(read offset %s, %s): reading again from %d", tp.topic, tp.partition, start, end - 1,
                      now - first, read_offset, "paused" if paused else "active", start)
            await self.seek(tp, start)
            if paused:  # no rebalance runs: a deferral (resume_partitions) is stale here
                self._resume_deferred -= {tp}
                super().resume_partitions({tp})
            self._stalled_since.pop((generation, tp, start, read_offset), None)

    async def on_stop(self) -> None:
        await super().on_stop()
        if self._gap_check is not None:
            self._gap_check.close()


class RecordBatchProducer(faust_aiokafka.Producer):
    """Faust's producer, plus a send of many records for one partition as one record batch."""

    async def send_record_batches(self, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]) -> list:
        """Queue `records` for one partition as few record batches as max_batch_size allows.

        aiokafka's accumulator holds them like any send, so `flush` (and Faust's commit,
        which flushes first) waits for them. Returns the delivery futures.
        """
        producer = self._ensure_producer()
        futures = []
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full (and closed): send it
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any record
        if batch.record_count():
            batch.close()  # complete: no linger, and no send() of another record joins it
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures


class Transport(faust_aiokafka.Transport):
    Consumer = TunedConsumer
    Producer = RecordBatchProducer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def broker_urls(bootstrap: str) -> list[str]:
    return [f"{SCHEME}://{server.strip()}" for server in bootstrap.split(",") if server.strip()]
