"""A tiny Faust worker on streams.faust_transport that leaves its partition's last record unread.

    python tests/streams/stalling_worker.py worker

Run by test_faust_transport.py. On b"skip-next" its agent moves the fetch position past the
next record, as a rebalance was seen to leave a quiet partition's last record: unread,
uncommitted, and exposed by no later record. The worker then holds nothing of the partition.

On b"hold-fetched" it takes its partition out as a full stream buffer does, for STALL_HOLD_S
seconds: the records fetched meanwhile wait in aiokafka's fetcher, in the worker's hands.

On b"seek-then-skip" (at offset k) it seeks to k through Faust, as Faust seeks to a commit,
then moves the fetch position to k + 1 behind Faust's back: for Faust the record at the seek
offset never comes, as records fetched around a rebalance were dropped, and k + 1 comes first.
"""

from __future__ import annotations

import asyncio
import os

import faust
from confluent_kafka import Consumer, TopicPartition
from faust.types import TP

from streams import faust_transport  # noqa: F401 (registers the tunedkafka transport)
from streams.process_exit import run_to_exit

app = faust.App(
    os.environ["STALL_APP_ID"],
    broker=f"tunedkafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    topic_partitions=1,
    topic_allow_declare=False,  # the test creates the topic
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=0.5,
    web_enabled=False,
)
source = app.topic(os.environ["STALL_SOURCE"], key_type=bytes, value_type=bytes, key_serializer="raw",
                   value_serializer="raw")


@app.agent(source, name="read_until_skip")
async def read_until_skip(stream):
    async for event in stream.events():
        print("read", event.value, flush=True)
        if event.value == b"skip-next":
            tp, offset = TP(event.message.topic, event.message.partition), event.message.offset
            # Nothing is fetched from here on until the seek: the record the test now produces
            # must be passed over by the position, not fetched first (then it would just be read).
            app.consumer.pause_partitions([tp])
            await asyncio.sleep(1.5)  # a fetch already in flight (up to 1 s) ends first
            print("paused: produce the next record", flush=True)
            while await asyncio.to_thread(_end_of, tp) < offset + 2:
                await asyncio.sleep(0.1)
            # Past it (a seek out of range would reset to the start); left paused, as a partition a
            # rebalance never resumed: the stall check resumes it too.
            await app.consumer.seek(tp, offset + 2)
        elif event.value == b"hold-fetched":
            # Done with this record (acknowledged), then the partition is out as a full buffer
            # takes it out: what is fetched meanwhile waits in aiokafka's fetcher.
            asyncio.ensure_future(_hold_as_a_full_buffer(TP(event.message.topic, event.message.partition)))
        elif event.value == b"seek-then-skip":
            tp, offset = TP(event.message.topic, event.message.partition), event.message.offset
            await asyncio.sleep(0.5)  # the fetcher notes this record as read once the agent has it: after that
            await app.consumer.seek(tp, offset)
            thread = app.consumer._thread
            await thread.call_thread(_move_position, thread._ensure_consumer(), tp, offset + 1)
            print(f"moved past {offset} (read offset {app.consumer._read_offset.get(tp)})", flush=True)


async def _hold_as_a_full_buffer(tp) -> None:
    await asyncio.sleep(1.0)  # the record's acknowledgement and commit go first
    app.consumer.on_buffer_full(tp)
    print("holding: produce the next record", flush=True)
    await asyncio.sleep(float(os.environ["STALL_HOLD_S"]))
    print("releasing", flush=True)
    app.consumer.on_buffer_drop(tp)


def _end_of(tp) -> int:
    reader = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "stalling-worker-end"})
    try:
        return reader.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10, cached=False)[1]
    finally:
        reader.close()


async def _move_position(consumer, tp, offset: int) -> None:
    consumer.seek(tp, offset)  # aiokafka's own seek: Faust does not see it


if __name__ == "__main__":
    run_to_exit(faust.Worker(app, loglevel="info"))
