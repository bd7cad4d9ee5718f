"""A tiny Faust worker on streams.faust_transport whose seek to the committed offsets answers late.

    python tests/streams/slow_seek_worker.py worker

Run by test_faust_transport.py. Its agent forwards every record of SEEK_SOURCE to
SEEK_SINK slowly, through a small stream buffer, and keeps a table (so every start
recovers a changelog first): the shape in which the bench lost records at the end of
a rebalance. The late seek (SEEK_DELAY_S) stands for a broker slow to answer under
load; it only widens a window that exists on every start.
"""

from __future__ import annotations

import asyncio
import os

import faust
from faust.transport.drivers import TRANSPORTS

from streams import faust_transport
from streams.settings import get_settings


class SlowSeekConsumer(faust_transport.TunedConsumer):
    async def seek_to_committed(self):
        await asyncio.sleep(float(os.environ["SEEK_DELAY_S"]))
        return await super().seek_to_committed()


class SlowSeekTransport(faust_transport.Transport):
    Consumer = SlowSeekConsumer


TRANSPORTS.aliases["slowseek"] = f"{__name__}:SlowSeekTransport"

app = faust.App(
    os.environ["SEEK_APP_ID"],
    broker=f"slowseek://{os.environ['SEEK_BOOTSTRAP']}",
    store="memory://",  # an empty store on every start: recovery always reads the changelog
    topic_partitions=1,
    topic_allow_declare=False,  # the test creates every topic
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    stream_buffer_maxsize=8,  # so records wait in the stream's queue while the seek is awaited
    broker_commit_interval=0.5,
    broker_session_timeout=get_settings().broker_session_timeout_s,
    broker_heartbeat_interval=get_settings().broker_heartbeat_interval_s,
    web_enabled=False,
)


def raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


source, sink = raw_topic(os.environ["SEEK_SOURCE"]), raw_topic(os.environ["SEEK_SINK"])
forwarded = app.Table("forwarded", default=int, partitions=1)


@app.agent(source)
async def forward_slowly(stream):
    async for key, value in stream.items():
        await asyncio.sleep(0.01)
        forwarded[key.decode()] += 1
        await sink.send(key=key, value=value)


if __name__ == "__main__":
    app.main()
