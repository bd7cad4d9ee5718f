"""streams.faust_transport against the real embedded broker: no record is skipped at the end of a rebalance."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

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
