"""streams.faust_transport against the real embedded broker: no record is skipped at the end of a rebalance."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka import Producer
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
            reader.read_until(lambda messages: {m.value() for m in messages} >= set(offered), timeout=60)
        except AssertionError:
            missing = len(set(offered) - {m.value() for m in reader.messages})
            raise AssertionError(f"{start}: {missing} of 600 records never forwarded; worker log: {log_path}") from None
        finally:
            worker.terminate()
            assert worker.wait(30) == 0
