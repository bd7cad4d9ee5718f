"""Faust's aiokafka transport with two broker quirks handled: the fetch wait and per-topic batching.

Fetch wait: faust-streaming hard-codes fetch_max_wait_ms=1500. Tansu does not wake a
parked fetch when data arrives, so every hop would add up to 1.5 s of latency; the wait
comes from ANTIFRAUD_CONSUMER_FETCH_WAIT_MS instead.

Batching: on a broker with the ListOffsets last-batch quirk (streams.quirks) only the
topics whose end offsets somebody trusts need one record per batch: the changelogs, which
Faust recovers up to ListOffsets "latest". Every other topic is read by fetching, which
sees every record (the fetch's own high watermark is exact), so it keeps full batching:
one record per batch costs ~28x in produce rate (docs/performance.md).

Registered as the `tunedkafka://` scheme.
"""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
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


class TunedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class SplitBatchingProducer(faust_aiokafka.Producer):
    """Faust's producer, plus a second one-record-per-batch producer for `exact_end_topics`.

    Commits flush both (Faust flushes the producer before it commits offsets), so
    at-least-once holds for every topic.
    """

    # Set by streams.app from the catalog when the broker has the quirk; empty: one producer.
    exact_end_topics: frozenset[str] = frozenset()
    _single_record_producer: Any = None

    def _new_single_record_producer(self):
        # aiokafka counts max_batch_size in bytes: 1 puts every record in its own batch.
        return self._producer_type(**{**self._settings_default(), **self._settings_auth(), "max_batch_size": 1})

    async def on_start(self) -> None:
        await super().on_start()
        if self.exact_end_topics:
            self._single_record_producer = self._new_single_record_producer()
            self.beacon.add(self._single_record_producer)
            await self._single_record_producer.start()

    async def on_stop(self) -> None:
        producer, self._single_record_producer = self._single_record_producer, None
        if producer is not None:
            await producer.stop()
        await super().on_stop()

    async def send(self, topic, key, value, partition, timestamp, headers, *, transactional_id=None):
        producer = self._single_record_producer
        if producer is None or topic not in self.exact_end_topics or transactional_id:
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

    async def flush(self) -> None:
        await super().flush()
        if self._single_record_producer is not None:
            await self._single_record_producer.flush()


class Transport(faust_aiokafka.Transport):
    Consumer = TunedConsumer
    Producer = SplitBatchingProducer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def broker_urls(bootstrap: str) -> list[str]:
    return [f"{SCHEME}://{server.strip()}" for server in bootstrap.split(",") if server.strip()]
