"""`antifraud worker` whose stop hangs: `python -m hanging_stop_worker worker`.

One extra task blocks the event loop when Faust cancels it on the way out, the shape of
the hang seen in Faust's consumer stop, only harsher (nothing on the loop runs again).
Run by test_worker.py: the worker's watchdog must end the process anyway.
"""

from __future__ import annotations

import asyncio
import time

from streams.app import app


@app.task
async def _hang_when_stopped() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("stop: blocking the event loop", flush=True)
        time.sleep(3600)


if __name__ == "__main__":
    from streams.cli import main

    main()
