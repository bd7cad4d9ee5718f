"""Faust's aiokafka transport with the consumer fetch wait made a setting.

faust-streaming hard-codes fetch_max_wait_ms=1500. Tansu does not wake a parked fetch
when data arrives, so every hop would add up to 1.5 s of latency; the wait comes from
ANTIFRAUD_CONSUMER_FETCH_WAIT_MS instead. Registered as the `tunedkafka://` scheme.
"""

from __future__ import annotations

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


class Transport(faust_aiokafka.Transport):
    Consumer = TunedConsumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def broker_urls(bootstrap: str) -> list[str]:
    return [f"{SCHEME}://{server.strip()}" for server in bootstrap.split(",") if server.strip()]
