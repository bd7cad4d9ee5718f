"""Stream workers in one consumer group: a member joining and one leaving lose no signal."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from streams.catalog import get_catalog
from streams.contracts.examples import EXAMPLES
from streams.kafka import producer_config
from streams.supervisor import spawn_stream_workers, supervise
from support import Reader, worker_on_own_servers

CATALOG = get_catalog()


def offer_steadily(settings, ids: list[str], per_s: float, done: threading.Event, failed: list) -> None:
    producer = Producer(producer_config(settings))

    def delivered(error, _message) -> None:
        if error is not None:
            failed.append(error)

    for n, event_id in enumerate(ids):
        telecom = dict(EXAMPLES["TelecomEvent"], event_id=event_id, subscriber=f"+86138{n:08d}",
                       event_time=datetime.now(UTC).isoformat())
        producer.produce(CATALOG.topic("in_telecom").name, json.dumps(telecom).encode(), key=event_id.encode(),
                         on_delivery=delivered)
        producer.poll(0)
        time.sleep(1 / per_s)
    if producer.flush(60) != 0:
        failed.append("not flushed")
    done.set()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_second_worker_joining_and_the_first_leaving_lose_no_signal(tmp_path):
    own = worker_on_own_servers(tmp_path, ANTIFRAUD_WORKER_NAME="worker-1")
    reader = Reader(own.settings.kafka_bootstrap_servers, CATALOG.topic("norm_telecom").name)
    ids = [f"rebalance-{n}" for n in range(600)]
    done, feed_failed = threading.Event(), []
    # As `antifraud up` does: a worker that stops itself (skipped records found, streams.faust_transport) is restarted.
    supervising = threading.Event()
    supervise(own.platform, supervising)
    try:
        feed = threading.Thread(target=offer_steadily, args=(own.settings, ids, 30.0, done, feed_failed), daemon=True)
        feed.start()
        time.sleep(5)
        second, = spawn_stream_workers(own.platform, 1, prefix="joining")  # a rebalance while traffic flows
        time.sleep(7)
        own.platform.stop_child(own.worker)  # and another: the first leaves, the second takes every partition
        assert second.process.poll() is None
        assert done.wait(90) and not feed_failed, f"the feed itself failed: {feed_failed[:3]}"

        def ingested(messages) -> set[str]:
            return {json.loads(m.value())["event"]["event_id"] for m in messages}

        try:
            reader.read_until(lambda messages: ingested(messages) >= set(ids), timeout=90)
        except AssertionError:
            missing = set(ids) - ingested(reader.messages)
            offered = Reader(own.settings.kafka_bootstrap_servers, CATALOG.topic("in_telecom").name)
            try:  # were they on the input topic at all? Then the platform lost them, not the feed.
                on_input = {json.loads(m.value())["event_id"] for m in offered.read_for(5)}
            finally:
                offered.close()
            raise AssertionError(f"{len(missing)} of {len(ids)} signals never ingested ({len(missing & on_input)} of them "
                                 f"on the input topic), e.g. {sorted(missing)[:5]}") from None
    finally:
        supervising.set()
        reader.close()
        own.stop()


@pytest.mark.timeout(180)
def test_a_worker_whose_stop_hangs_ends_itself_soon_after_sigterm(settings, tmp_path):
    # A Faust worker was seen hanging on shutdown; its watchdog ends it (STOP_GRACE_S), before
    # the supervisor's SIGKILL: SIGTERM ends every process within 10 s.
    import signal
    import uuid
    from pathlib import Path

    from streams.supervisor import Platform
    from streams.worker import EXIT_STOP_HUNG, STOP_GRACE_S

    platform = Platform(settings.model_copy(update={"run_dir": tmp_path}))
    name = f"hanging-{uuid.uuid4().hex[:6]}"
    worker = platform.spawn(name, "worker", module="hanging_stop_worker", PYTHONPATH=str(Path(__file__).parent),
                            ANTIFRAUD_WORKER_NAME=name)
    try:
        deadline = time.monotonic() + 120
        while b"stages ingest" not in worker.log_path.read_bytes():
            assert worker.process.poll() is None and time.monotonic() < deadline, worker.log_path.read_text()[-2000:]
            time.sleep(0.2)
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(60)
        took = time.monotonic() - started
    finally:
        platform.stop()
    log = worker.log_path.read_text(errors="replace")
    # The stop hung: in the task that blocks the loop, or (on a busy machine) already in Faust's own
    # stop before it got there, which is the hang seen in the field. Either way the watchdog ended it.
    assert code == EXIT_STOP_HUNG, log[-2000:]
    assert "did not stop within" in log
    assert STOP_GRACE_S - 1 <= took < 10 + 5  # the watchdog, not SIGKILL (slack for a busy machine)


def test_known_framework_false_alarms_are_warnings_and_a_stalled_input_stays_an_error(caplog):
    # The message and arguments as Faust logs them 5 min after start (seen in a real worker's log).
    import logging

    from faust.types import TP

    from streams.worker import demote_spurious_errors

    demote_spurious_errors()
    from streams.faust_transport import TunedConsumerThread

    faust_log = logging.getLogger(TunedConsumerThread.logger.name)  # where a live worker logs it
    with caplog.at_level(logging.WARNING):
        for topic in ("antifraud-person_state-changelog", "antifraud.in.bank"):
            faust_log.error("[^---TunedConsumerThread]: Stream has not started processing %r (started %s).",
                            TP(topic, 3), "5.06 minutes ago")
        logging.getLogger("aiokafka.consumer.fetcher").error(
            "Failed fetch offsets from %s: %s", 1, "[Error 6] NotLeaderForPartitionError: TopicPartition(...)")
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR", "WARNING"]
