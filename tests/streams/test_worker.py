"""Stream workers in one consumer group: a member joining and one leaving lose no signal."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest
from confluent_kafka import Producer

from streams.catalog import get_catalog
from streams.contracts.examples import EXAMPLES
from streams.kafka import producer_config
from streams.supervisor import spawn_stream_workers
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()


def offer_steadily(settings, ids: list[str], per_s: float, done: threading.Event) -> None:
    producer = Producer(producer_config(settings))
    for n, event_id in enumerate(ids):
        telecom = dict(EXAMPLES["TelecomEvent"], event_id=event_id, subscriber=f"+86138{n:08d}",
                       event_time=datetime.now(timezone.utc).isoformat())
        producer.produce(CATALOG.topic("in_telecom").name, json.dumps(telecom).encode(), key=event_id.encode())
        producer.poll(0)
        time.sleep(1 / per_s)
    producer.flush(30)
    done.set()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_second_worker_joining_and_the_first_leaving_lose_no_signal(tmp_path):
    own = worker_on_own_servers(tmp_path, ANTIFRAUD_WORKER_NAME="worker-1")
    reader = Reader(own.settings.kafka_bootstrap_servers, CATALOG.topic("norm_telecom").name)
    ids = [f"rebalance-{n}" for n in range(600)]
    done = threading.Event()
    try:
        feed = threading.Thread(target=offer_steadily, args=(own.settings, ids, 30.0, done), daemon=True)
        feed.start()
        time.sleep(5)
        second, = spawn_stream_workers(own.platform, 1, prefix="joining")  # a rebalance while traffic flows
        time.sleep(7)
        own.platform.stop_child(own.worker)  # and another: the first leaves, the second takes every partition
        assert second.process.poll() is None
        done.wait(60)

        def ingested(messages) -> set[str]:
            return {json.loads(m.value())["event"]["event_id"] for m in messages}

        try:
            reader.read_until(lambda messages: ingested(messages) >= set(ids), timeout=90)
        except AssertionError:
            missing = set(ids) - ingested(reader.messages)
            raise AssertionError(f"{len(missing)} of {len(ids)} signals never ingested, e.g. {sorted(missing)[:5]}") from None
    finally:
        reader.close()
        own.stop()
