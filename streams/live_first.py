"""Live first: while live events flow, background stages take a bounded share of the event loop.

Every stage of a worker shares one event loop. A bulk list (100,000 intelligence entries at
once) kept ingest and the reference loader busy for a minute, and the live events behind
them, funds warnings included, waited that minute (docs/performance.md, Reach-back). So the
reference path runs as *background*: one background micro-batch at a time, and after each,
while a live stage has handled a batch within `LIVE_WITHIN_S`, a pause long enough that
background work stays under `share` of the loop's time. With no live traffic the pause is 0:
a registry load at start-up runs at full speed. Nor does it pause while a live stage waits
for it (`needed`: enrich's reference barrier waits for the loader), which would invert the
priority.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager

from prometheus_client import Counter

LIVE_WITHIN_S = 1.0  # a live batch this recent means live traffic is flowing
PAUSE_STEP_S = 0.01  # a pause looks this often whether a live stage now waits for background work

YIELDED = Counter("antifraud_background_yield_seconds_total",
                  "Seconds background stages (the reference path) paused to leave the loop to live ones")


class LiveFirst:
    def __init__(self, share: float) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self._live_at = float("-inf")
        self._turn = asyncio.Lock()  # created unbound: binds to the loop that first waits on it
        self._needed = 0  # live stages waiting for background work right now

    def live_seen(self) -> None:
        self._live_at = time.monotonic()

    @contextmanager
    def needed(self):
        """A live stage waits for background work inside this: no background pause meanwhile."""
        self._needed += 1
        try:
            yield
        finally:
            self._needed -= 1

    def pause_after(self, busy_s: float) -> float:
        """How long background work pauses after a batch that took `busy_s`."""
        if self.share >= 1 or self._needed or time.monotonic() - self._live_at > LIVE_WITHIN_S:
            return 0.0
        return busy_s * (1 - self.share) / self.share

    async def take_turn(self) -> None:
        await self._turn.acquire()

    async def end_turn(self, busy_s: float) -> None:
        """Pause (while live traffic flows), then let the next background batch go."""
        try:
            until = time.monotonic() + self.pause_after(busy_s)
            while not self._needed and (left := until - time.monotonic()) > 0:
                step = min(left, PAUSE_STEP_S)
                YIELDED.inc(step)
                await asyncio.sleep(step)
        finally:
            self._turn.release()
