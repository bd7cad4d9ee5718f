"""A tiny Faust worker whose agent raises outside any record handling when it reads b"boom".

    python tests/agents/crashing_worker.py worker

Run by test_agent_crash.py. The agent body is wrapped as every stage's is
(streams.isolation.stops_worker_on_crash); CRASH_WRAP=0 leaves Faust's default, under
which the crashed agent's worker lives on.
"""

from __future__ import annotations

import os

import faust

from streams.isolation import stops_worker_on_crash

app = faust.App(
    os.environ["CRASH_APP_ID"],
    broker=f"kafka://{os.environ['CRASH_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=1,
    topic_allow_declare=False,  # the test creates the topic
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
source = app.topic(os.environ["CRASH_SOURCE"], key_type=bytes, value_type=bytes, key_serializer="raw",
                   value_serializer="raw")


async def crash_on_boom(stream):
    async for value in stream:
        print("read", value, flush=True)
        if value == b"boom":
            raise RuntimeError("a bug in the loop, not in a record")


if os.environ.get("CRASH_WRAP", "1") == "1":
    crash_on_boom = stops_worker_on_crash(app)(crash_on_boom)
app.agent(source, name="crash_on_boom")(crash_on_boom)

if __name__ == "__main__":
    app.main()
