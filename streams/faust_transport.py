"""Faust's aiokafka transport with two broker quirks handled and two Faust races closed.

Fetch wait: faust-streaming hard-codes fetch_max_wait_ms=1500. Tansu does not wake a
parked fetch when data arrives, so every hop would add up to 1.5 s of latency; the wait
comes from ANTIFRAUD_CONSUMER_FETCH_WAIT_MS instead.

Batching: on a broker with the ListOffsets last-batch quirk (streams.quirks) only the
topics whose end offsets somebody trusts need one record per batch: the changelogs, which
Faust recovers up to ListOffsets "latest". Every other topic is read by fetching, which
sees every record (the fetch's own high watermark is exact), so it keeps full batching:
one record per batch costs ~28x in produce rate (docs/performance.md).

Record batches: Tansu slows down with the number of batches in a partition (its fetch
lists them all). `send_record_batches` queues a micro-batch's records for a partition as
one batch (streams.outbox), and topics with a `linger_ms` in topics.yaml (the registry
updates) get a producer with that linger, which gathers many micro-batches into one batch.

Races: records fetched around the end of a rebalance were lost, by Faust's live set of
active partitions (TunedConsumerThread.getmany) and by its resume before the seek
(TunedConsumer); tests/streams/test_faust_transport.py.

Registered as the `tunedkafka://` scheme.
"""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "tunedkafka"


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        from streams.settings import get_settings

        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = get_settings().consumer_fetch_wait_ms
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


class SplitBatchingProducer(faust_aiokafka.Producer):
    """Faust's producer, plus producers of their own for topics that need other batching.

    - `exact_end_topics` (the changelogs, on a broker with the ListOffsets quirk): one
      record per batch, so the listed end is exact;
    - `lingering_topics` (topics.yaml `linger_ms`: the registry updates): a long linger,
      so few large batches, which keeps Tansu's fetches on them cheap.

    Commits flush them all (Faust flushes the producer before it commits offsets), so
    at-least-once holds for every topic.
    """

    # Set by streams.app from the catalog; empty: Faust's one producer.
    exact_end_topics: frozenset[str] = frozenset()
    lingering_topics: dict[str, int] = {}  # topic name -> linger in ms
    _own_producers: dict[str, Any] = {}  # topic name -> its aiokafka producer, while started

    def _own_settings(self) -> dict[str, dict[str, Any]]:
        """Each topic with a producer of its own, and what its producer changes."""
        # aiokafka counts max_batch_size in bytes: 1 puts every record in its own batch.
        own = {topic: {"max_batch_size": 1} for topic in self.exact_end_topics}
        for topic, linger_ms in self.lingering_topics.items():
            own.setdefault(topic, {"linger_ms": linger_ms})  # a changelog stays exact
        return own

    async def on_start(self) -> None:
        await super().on_start()
        by_change: dict[tuple, Any] = {}
        own_producers = {}
        for topic, change in self._own_settings().items():
            key = tuple(sorted(change.items()))
            if key not in by_change:
                producer = self._producer_type(**{**self._settings_default(), **self._settings_auth(), **change})
                self.beacon.add(producer)
                await producer.start()
                by_change[key] = producer
            own_producers[topic] = by_change[key]
        self._own_producers = own_producers

    async def on_stop(self) -> None:
        producers, self._own_producers = set(self._own_producers.values()), {}
        for producer in producers:
            await producer.stop()
        await super().on_stop()

    async def send(self, topic, key, value, partition, timestamp, headers, *, transactional_id=None):
        producer = self._own_producers.get(topic)
        if producer is None or transactional_id:
            return await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        if headers is not None and hasattr(headers, "items"):
            headers = list(headers.items())
        self._send_on_produce_message(key=key, value=value, partition=partition, timestamp=timestamp, headers=headers)
        try:
            return await producer.send(
                topic, value, key=key, partition=partition,
                timestamp_ms=int(timestamp * 1000.0) if timestamp else timestamp,
                headers=headers if self.allow_headers else None,
            )
        except KafkaError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc

    async def send_record_batches(self, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]) -> list:
        """Queue `records` for one partition as few record batches as max_batch_size allows.

        aiokafka's accumulator holds them like any send, so `flush` (and Faust's commit,
        which flushes first) waits for them. Returns the delivery futures. A lingering
        topic's records join its producer's open batch instead, which gathers several
        micro-batches.
        """
        if topic in self.exact_end_topics:
            raise ValueError(f"{topic} needs one record per batch (ListOffsets quirk): send it with send()")
        if topic in self._own_producers:
            lingering = self._own_producers[topic]
            return [await lingering.send(topic, value, key=key, partition=partition) for key, value in records]
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

    async def flush(self) -> None:
        await super().flush()
        for producer in set(self._own_producers.values()):
            await producer.flush()


class Transport(faust_aiokafka.Transport):
    Consumer = TunedConsumer
    Producer = SplitBatchingProducer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def broker_urls(bootstrap: str) -> list[str]:
    return [f"{SCHEME}://{server.strip()}" for server in bootstrap.split(",") if server.strip()]
