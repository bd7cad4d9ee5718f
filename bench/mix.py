"""The realistic event mix, from the traffic simulator's own generators.

Mostly benign carrier and bank traffic, a few percent fraud scenarios, a trickle of
malformed messages: exactly what `antifraud up` offers, because it *is* the simulator.
Residents and intelligence come from the same seed and sizes as the loaded reference
data, so enrichment finds them.
"""

from __future__ import annotations

import threading

from simulator.traffic import TrafficSimulator
from streams.settings import Settings

UNPACED = 1e9  # messages/s: the simulator then offers as fast as it can generate


def simulator(
    settings: Settings, producer, *, persons: int, intel: int, seed: int, run_tag: str, paced: bool = True
) -> TrafficSimulator:
    """paced=False for pre-loads: a fraud story's steps follow each other at once.

    Paced, the simulator spreads a story over seconds of wall clock; a pre-load that
    takes a second would cut nearly every story after its first step, leaving the
    backlog with first contacts and no transfers (no funds warnings, few alerts).
    """
    # run_tag goes into every event id: each phase's events are new to the dedup at ingest.
    gaps = {} if paced else {"max_gap_s": 0.0}
    return TrafficSimulator(settings, n_persons=persons, n_intel=intel, seed=seed, run_tag=run_tag, producer=producer,
                            **gaps)


def preload(sim: TrafficSimulator, count: int) -> None:
    """Offer `count` messages as fast as the simulator generates them (the producer stops it)."""
    stop = threading.Event()
    producer = sim.producer
    producer.limit, producer.stop = producer.produced + count, stop
    sim.run(stop, UNPACED)  # flushes before returning


class _Capture:
    """A Producer stand-in that keeps the payloads instead of sending them."""

    def __init__(self, count: int, stop: threading.Event) -> None:
        self.payloads: list[bytes] = []
        self.count, self.stop = count, stop

    def produce(self, topic, value=None, key=None, on_delivery=None):
        if len(self.payloads) < self.count:
            self.payloads.append(value)
        else:
            self.stop.set()

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=0):
        return 0


def sample_payloads(settings: Settings, count: int, *, persons: int, intel: int, seed: int) -> list[bytes]:
    """`count` event-mix payloads (for the raw broker reference: realistic sizes)."""
    stop = threading.Event()
    capture = _Capture(count, stop)
    sim = simulator(settings, capture, persons=persons, intel=intel, seed=seed, run_tag="bench-sample")
    sim.run(stop, UNPACED)
    return capture.payloads
