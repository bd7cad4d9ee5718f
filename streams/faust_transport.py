"""Faust's aiokafka transport: committed reads, two Faust races closed, record-batch sends.

Committed reads: Faust reads uncommitted records unless it runs exactly-once itself; a
feed's transactional producer may abort, and what it aborted never happened, so the
worker's consumer reads committed records only (TunedConsumerThread).

Races: records fetched around the end of a rebalance were lost, by Faust's live set of
active partitions (TunedConsumerThread.getmany) and by its resume before the seek
(TunedConsumer); tests/streams/test_faust_transport.py.

Record batches: `send_record_batches` queues a micro-batch's records for a partition as
one batch (streams.outbox): one call instead of one send (and one future) per record.

Registered as the `tunedkafka://` scheme.
"""

from __future__ import annotations

from faust.transport.consumer import ensure_TPset
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "tunedkafka"


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
