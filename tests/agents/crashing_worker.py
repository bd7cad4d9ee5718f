"""A tiny Faust worker whose agent raises outside any record handling when it reads b"boom".

    python tests/agents/crashing_worker.py worker

Run by test_agent_crash.py. The agent body is wrapped as every stage's is
(streams.isolation.stops_worker_on_crash) and the worker runs as `antifraud worker` runs
it (streams.process_exit.run_to_exit); CRASH_WRAP=0 leaves Faust's default, under which the
crashed agent's worker lives on. CRASH_BLOCK_FINALIZATION=1 leaves an object behind whose
finalizer never returns, as a worker's finalization was once seen to hang; CRASH_AS_CONSUMER=1
stops the worker as the consumer does on skipped records (Faust's stop then completes).
"""

from __future__ import annotations

import os
import time

import faust

from streams.isolation import crash_worker, stops_worker_on_crash
from streams.process_exit import EXIT_TO_REREAD, run_to_exit

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
            if os.environ.get("CRASH_AS_CONSUMER") == "1":
                # As the consumer stops the worker on skipped records: it asks for the stop and reads
                # on, so Faust's stop, which cancels this agent, completes.
                crash_worker(app, "consumer", RuntimeError("records were skipped"), exit_code=EXIT_TO_REREAD)
                continue
            raise RuntimeError("a bug in the loop, not in a record")


if os.environ.get("CRASH_WRAP", "1") == "1":
    crash_on_boom = stops_worker_on_crash(app)(crash_on_boom)
app.agent(source, name="crash_on_boom")(crash_on_boom)



class _NeverFinalized:
    def __del__(self) -> None:
        while True:  # releases the GIL, which a finalizing interpreter gives to no daemon thread
            time.sleep(1)


if os.environ.get("CRASH_BLOCK_FINALIZATION") == "1":
    _left_behind = _NeverFinalized()

if __name__ == "__main__":
    if os.environ.get("CRASH_WRAP", "1") == "1":
        run_to_exit(faust.Worker(app, loglevel="info"))
    else:
        app.main()
