"""streams.faust_transport against the real embedded broker: no record is skipped at the end of a rebalance."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.process_exit import EXIT_TO_REREAD

WORKER = Path(__file__).with_name("slow_seek_worker.py")
PROJECT_ROOT = WORKER.parents[2]


def test_every_record_is_forwarded_across_table_recovery_and_the_seek(servers, consumer_factory, tmp_path):
    # Records were lost around the end of a rebalance: fetched for partitions Faust had not
    # asked for (its live, momentarily empty set of active partitions) and dropped, or
    # handed to the streams while Faust awaited the seek and then cleared. Two starts: a
    # new group (no committed offset: aiokafka does not seek at all) and a restart.
    app_id = f"test-seek-{uuid.uuid4().hex[:8]}"
    source, sink, changelog = f"{app_id}.in", f"{app_id}.out", f"{app_id}-forwarded-changelog"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    for future in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in (source, sink, changelog)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": servers.bootstrap})
    for n in range(3):  # a changelog to recover, one record per batch so its listed end is exact
        producer.produce(changelog, key=b'"earlier-%d"' % n, value=b"1")
        producer.flush(10)
    reader = consumer_factory(sink)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
           "SEEK_APP_ID": app_id, "SEEK_BOOTSTRAP": servers.bootstrap, "SEEK_SOURCE": source, "SEEK_SINK": sink,
           "SEEK_DELAY_S": "2.0"}

    for start in ("new group", "restart"):
        offered = [b"%s %d" % (start.encode(), n) for n in range(600)]
        for value in offered[:300]:  # a backlog
            producer.produce(source, key=value, value=value)
        assert producer.flush(10) == 0
        log_path = tmp_path / f"worker {start}.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen([sys.executable, str(WORKER), "worker", "--loglevel", "info"],
                                      cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            # and live traffic while the worker joins, recovers and seeks: new records wake
            # fetches that are in flight while recovery pauses and resumes partitions
            for value in offered[300:]:
                producer.produce(source, key=value, value=value)
                producer.poll(0.02)
            assert producer.flush(10) == 0
            reader.read_until(lambda messages, wanted=set(offered): {m.value() for m in messages} >= wanted, timeout=60)
        except AssertionError:
            missing = len(set(offered) - {m.value() for m in reader.messages})
            raise AssertionError(f"{start}: {missing} of 600 records never forwarded; worker log: {log_path}") from None
        finally:
            worker.terminate()
            assert worker.wait(30) == 0


def test_the_gap_check_tells_skipped_records_from_what_the_broker_does_not_have(servers, topic_factory):
    # A jump in offsets is a real gap only where the broker has no committed record: transaction
    # markers and aborted records are gaps; records a rebalance race skipped are not (streams.faust_transport).
    from streams.faust_transport import GapCheck

    topic = topic_factory(partitions=1)
    plain = Producer({"bootstrap.servers": servers.bootstrap})
    for n in range(5):
        plain.produce(topic, value=b"kept %d" % n, partition=0)  # offsets 0-4
    assert plain.flush(10) == 0
    feed = Producer({"bootstrap.servers": servers.bootstrap, "transactional.id": f"gap-{uuid.uuid4()}"})
    feed.init_transactions(10)
    feed.begin_transaction()
    for n in range(3):
        feed.produce(topic, value=b"aborted %d" % n, partition=0)  # offsets 5-7, then the abort marker at 8
    feed.flush(10)
    feed.abort_transaction(10)
    watermarks = Consumer({"bootstrap.servers": servers.bootstrap, "group.id": f"gap-{uuid.uuid4()}"})
    for _ in range(100):  # the coordinator writes the abort marker after abort_transaction returns
        if watermarks.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)[1] == 9:
            break
        time.sleep(0.05)
    watermarks.close()
    plain.produce(topic, value=b"after", partition=0)  # offset 9
    assert plain.flush(10) == 0

    check = GapCheck(servers.bootstrap)
    try:
        assert check.records_in(topic, 0, 1, 4)  # records 1-3 exist: a jump from 0 to 4 skipped them
        assert not check.records_in(topic, 0, 5, 9)  # aborted records and the marker: nothing to read
        assert check.records_in(topic, 0, 5, 10)  # ... but 9 is there
    finally:
        check.close()


def start_stalling_worker(servers, tmp_path, prefix: str, values: tuple[bytes, ...], **env_extra: str):
    """tests/streams/stalling_worker.py on a new one-partition topic holding `values`: (producer, topic, worker, log)."""
    app_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    source = f"{app_id}.in"
    admin = AdminClient({"bootstrap.servers": servers.bootstrap})
    admin.create_topics([NewTopic(source, num_partitions=1, replication_factor=1)])[source].result(10)
    producer = Producer({"bootstrap.servers": servers.bootstrap})
    for value in values:
        producer.produce(source, value=value)
    assert producer.flush(10) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
           "STALL_APP_ID": app_id, "STALL_SOURCE": source, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap, **env_extra}
    log_path = tmp_path / f"{prefix} worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, str(WORKER.with_name("stalling_worker.py")), "worker"],
                                  cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    return producer, source, worker, log_path


def wait_for_line(worker, log_path: Path, text: bytes, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log_path.read_bytes():
        assert worker.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def test_a_worker_rereads_a_partition_whose_last_record_it_left_unread(servers, tmp_path):
    # A rebalance left a quiet partition's last record unread and uncommitted, and no later
    # record exposed the gap: it waited for the next restart (the fault suite's drain never ended).
    producer, source, worker, log_path = start_stalling_worker(servers, tmp_path, "test-stall", (b"first", b"skip-next"),
                                                               ANTIFRAUD_STREAM_STALL_S="3")
    try:
        wait_for_line(worker, log_path, b"paused: produce the next record")  # its position will pass over it
        producer.produce(source, value=b"left unread")
        assert producer.flush(10) == 0
        deadline = time.monotonic() + 60
        while b"b'left unread'" not in log_path.read_bytes():
            assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"the worker sat on an unread record; log: {log_path}"
            time.sleep(0.2)
        assert b"reading again from 2" in log_path.read_bytes()
    finally:
        worker.terminate()
        worker.wait(30)


def test_records_waiting_in_the_fetcher_while_a_stream_buffer_is_full_are_not_taken_for_a_stall(servers, tmp_path):
    # A registry load kept a partition's fetched records in aiokafka's fetcher for over 20 s;
    # the stall net reread the partition under that fetch and the fetcher crashed the worker.
    producer, source, worker, log_path = start_stalling_worker(servers, tmp_path, "test-held", (b"first", b"hold-fetched"),
                                                               ANTIFRAUD_STREAM_STALL_S="3", STALL_HOLD_S="15")
    try:
        wait_for_line(worker, log_path, b"holding: produce the next record")
        producer.produce(source, value=b"waits in the fetcher")
        assert producer.flush(10) == 0
        wait_for_line(worker, log_path, b"b'waits in the fetcher'", timeout_s=60)
        text = log_path.read_bytes()
        assert b"reading again" not in text, text.decode(errors="replace")[-3000:]
        assert text.index(b"releasing") < text.index(b"b'waits in the fetcher'")  # held throughout, then read
    finally:
        worker.terminate()
        worker.wait(30)


def test_the_seek_to_commits_also_moves_partitions_without_a_commit_above_zero(servers, topic_factory):
    # Faust seeks to the commits after dropping records it fetched while its flow was stopped;
    # aiokafka's own seek passes over a partition with no commit or a commit at 0, which kept
    # its fetch position past the dropped records.
    from aiokafka import AIOKafkaConsumer  # in the test, as GapCheck's above: Faust's stack loads only where used
    from aiokafka.structs import OffsetAndMetadata
    from aiokafka.structs import TopicPartition as AioTP

    from streams.faust_transport import seek_to_committed

    topic = topic_factory(partitions=4)
    producer = Producer({"bootstrap.servers": servers.bootstrap})
    for partition in range(4):
        for n in range(5):
            producer.produce(topic, value=b"%d" % n, partition=partition)
    assert producer.flush(10) == 0
    committed_at, changelog = {1: 0, 2: 3}, 3  # partition 0: no commit; 3: stands for a changelog

    async def scenario():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers.bootstrap, group_id=f"seek-{uuid.uuid4()}",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            read = 0
            while read < 20:
                read += sum(len(records) for records in (await consumer.getmany(timeout_ms=1000)).values())
            tps = {p: AioTP(topic, p) for p in range(4)}
            await consumer.commit({tps[p]: OffsetAndMetadata(offset, "") for p, offset in committed_at.items()})
            assert {p: await consumer.position(tp) for p, tp in tps.items()} == dict.fromkeys(range(4), 5)
            await seek_to_committed(consumer, lambda tp: tp.partition == changelog)
            return {p: await consumer.position(tp) for p, tp in tps.items()}
        finally:
            await consumer.stop()

    assert asyncio.run(scenario()) == {0: 0, 1: 0, 2: 3, 3: 5}


def test_after_a_seek_a_record_that_never_came_at_the_seek_offset_is_not_committed_past(servers, tmp_path):
    # Faust kept the offset it seeks to (a commit) as the last record read, so when the record at
    # exactly that offset never came and the next one did, the two looked contiguous: the next
    # was processed and committed past the missing one. Now the gap check asks the broker.
    # offsets 0-2: the seek goes to 2
    producer, source, worker, log_path = start_stalling_worker(servers, tmp_path, "test-seek-skip",
                                                               (b"a", b"b", b"seek-then-skip"))
    try:
        wait_for_line(worker, log_path, b"moved past 2")
        producer.produce(source, value=b"after")  # offset 3: the first record after the seek
        assert producer.flush(10) == 0
        code = worker.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker took record 3 as following the seek to 2; log: {log_path}") from None
    finally:
        if worker.poll() is None:
            worker.kill()
    text = log_path.read_text(errors="replace")
    assert code == EXIT_TO_REREAD, text[-3000:]
    assert "records 2..2 were never delivered" in text and "b'after'" not in text
