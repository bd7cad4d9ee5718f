"""Drain measurement: a backlog is waiting, a worker eats it, the broker says how fast.

A *flow* is what one consumer group must get through on some partitions (one stage's
input topics, or the pass-through's). While the worker runs, the committed offsets of
every flow are sampled; afterwards the samples give the rate:

- one stage: the steady rate in a window that skips the warm-up (at most duration_s);
- a chain of stages in one worker: from the end of the warm-up until 99 % of the events
  are through every stage. Progress at time t is the input count times the smallest
  fraction any stage has done. A window would mislead here: stages share one event
  loop, so on a backlog the first stage takes most of it and the last ones catch up
  later; only the time to get everything through says what the chain sustains.

Faust commits every 2.8 s (broker_commit_interval), so progress moves in steps of that
size: a 60 s window is accurate to about 5 %, a tiny run's rate only to its order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.offsets import TP, Offsets

log = logging.getLogger(__name__)

POLL_S = 0.5
MIN_WINDOW_S = 5.0  # shorter windows than this are dominated by the commit interval
THROUGH_SHARE = 0.99  # a chain's rate runs until this share of the events is through
MAX_POINTS = 400
TAIL_TIMEOUT_S = 30.0  # all but a tail done and no commit for this long: the tail is stuck
DENSE_SHARE = 0.05  # a flow with fewer records than this share of the input is sparse


@dataclass
class Flow:
    name: str  # a stage, or "passthrough"
    group: str  # the consumer group whose committed offsets are its progress
    start: dict[TP, int]  # where the backlog begins, per partition


@dataclass
class Timeline:
    flows: list[str]
    spawned_at: float
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (t, consumed per flow)
    totals: dict[str, int] = field(default_factory=dict)
    done: bool = False
    error: str | None = None
    stuck_tail: dict[str, int] | None = None  # flow -> events never committed (see run_drain)

    def progress(self, consumed: dict[str, int]) -> float:
        """Events through every dense flow: the first flow's total times the smallest done fraction.

        Sparse flows (route's alerts are ~1 % of the events) are left out of the
        fraction: a few records committed in 2.8 s steps say nothing about a rate, and
        such a stage is never what limits the chain. They still count for `drained`.
        """
        dense = self.dense_flows()
        if not dense:
            return 0.0
        fraction = min(min(consumed[name], self.totals[name]) / self.totals[name] for name in dense)
        return self.totals[dense[0]] * fraction

    def dense_flows(self) -> list[str]:
        live = [name for name in self.flows if self.totals.get(name, 0) > 0]
        return [name for name in live if self.totals[name] >= DENSE_SHARE * self.totals[live[0]]]


def run_drain(
    offsets: Offsets,
    flows: list[Flow],
    spawned_at: float,
    is_alive: Callable[[], bool],
    on_sample: Callable[[dict[str, int], dict[str, int]], None] | None = None,
    stall_timeout_s: float = 120.0,
    timeout_s: float | None = None,
) -> Timeline:
    """Sample until every flow has committed up to its end offsets (or a stall/timeout/crash)."""
    timeline = Timeline([f.name for f in flows], spawned_at)
    last_change, last_consumed = time.monotonic(), None
    while True:
        committed = {f.name: offsets.committed(f.group, f.start) for f in flows}
        # Ends after committed: Faust flushes its sends before committing, so whatever an
        # upstream stage committed is already in the downstream topic's end offsets.
        ends = {f.name: offsets.ends(f.start) for f in flows}
        now = time.monotonic()
        consumed = {f.name: _consumed(f, committed[f.name]) for f in flows}
        totals = {f.name: sum(max(0, ends[f.name][tp] - f.start[tp]) for tp in f.start) for f in flows}
        timeline.samples.append((now, consumed))
        timeline.totals = totals
        log.debug("drain %.1f s: %s", now - spawned_at, {n: f"{consumed[n]}/{totals[n]}" for n in consumed})
        if on_sample:
            on_sample(consumed, totals)
        if all(consumed[name] >= totals[name] for name in consumed) and any(totals.values()):
            timeline.done = True
            return timeline
        if consumed != last_consumed:
            last_change, last_consumed = now, consumed
        if now - last_change > TAIL_TIMEOUT_S and _only_a_tail_left(consumed, totals):
            # Reported, not waited for: a few events held back must not cost minutes per phase.
            timeline.stuck_tail = {n: totals[n] - consumed[n] for n in consumed if consumed[n] < totals[n]}
            return timeline
        if not is_alive():
            timeline.error = "a worker exited before the backlog was drained (see its log)"
            return timeline
        if now - last_change > stall_timeout_s:
            timeline.error = f"no progress for {stall_timeout_s:.0f} s"
            return timeline
        if timeout_s is not None and now - spawned_at > timeout_s:
            timeline.error = f"not drained within {timeout_s:.0f} s"
            return timeline
        time.sleep(POLL_S)


def _only_a_tail_left(consumed: dict[str, int], totals: dict[str, int]) -> bool:
    return all(consumed[n] >= THROUGH_SHARE * totals[n] for n in consumed)


def _consumed(flow: Flow, committed: dict[TP, int | None]) -> int:
    return sum(max(0, (committed.get(tp) or 0) - start) for tp, start in flow.start.items())


def throughput(timeline: Timeline, warmup_s: float, duration_s: float) -> dict:
    """Sustained events/s of a drain: a window after the warm-up, or the best a short run allows."""
    samples = [(t, timeline.progress(c)) for t, c in timeline.samples]
    total = timeline.progress(timeline.totals)
    started = [(t, p) for t, p in samples if p > 0]
    result = {"events": int(round(total)), "drained": timeline.done, "stuck_tail": timeline.stuck_tail,
              "method": None, "window_s": 0.0,
              "events_in_window": 0, "events_per_s": 0.0, "startup_s": None}
    if not started:
        return result
    t_first, p_first = started[0]
    t_end, p_end = samples[-1]
    result["startup_s"] = round(t_first - timeline.spawned_at, 2)
    chain = len(timeline.dense_flows()) > 1
    # Where the work ended: 99 % through (a stuck tail or an idle worker is not a rate).
    t_through = next((t for t, p in samples if p >= THROUGH_SHARE * total), t_end)
    if t_through - t_first >= warmup_s + MIN_WINDOW_S:
        t_a, p_a = next((t, p) for t, p in samples if t >= t_first + warmup_s)
        if chain:  # until (nearly) everything is through every stage
            t_b, p_b = next((t, p) for t, p in samples if t >= t_through)
            method = "chain_drain"
        else:  # the steady rate: from the first sample after the warm-up, for at most duration_s
            t_b, p_b = [(t, p) for t, p in samples if t <= min(t_a + duration_s, t_through)][-1]
            method = "window"
    elif p_end > p_first and t_end > t_first:
        (t_a, p_a), (t_b, p_b), method = (t_first, p_first), (t_end, p_end), "drain"
    else:
        # Everything drained before the first commit: only the start-up-inclusive time is known.
        (t_a, p_a), (t_b, p_b), method = (timeline.spawned_at, 0.0), (t_end, p_end), "incl_startup"
    result.update(
        method=method,
        window_s=round(t_b - t_a, 2),
        events_in_window=int(round(p_b - p_a)),
        events_per_s=round((p_b - p_a) / (t_b - t_a), 1) if t_b > t_a else 0.0,
        window=(t_a, t_b),
    )
    if (timeline.done or timeline.stuck_tail) and t_end > t_first:
        # Everything, first commit to last (a stuck tail: to the last commit), the plainest figure.
        t_last = next(t for t, p in samples if p >= p_end)
        if t_last > t_first:
            result["drain_s"] = round(t_last - t_first, 2)
            result["drain_events_per_s"] = round((p_end - p_first) / (t_last - t_first), 1)
    # The progress curve itself (seconds since the worker was started, events through), thinned
    # to at most MAX_POINTS: to plot, or to recompute a rate another way.
    step = max(1, len(samples) // MAX_POINTS)
    result["progress"] = [[round(t - timeline.spawned_at, 2), int(p)] for t, p in samples[::step]]
    result["flows"] = {name: {"events": timeline.totals.get(name, 0), "done_after_s": _done_after(timeline, name, t_first)}
                       for name in timeline.flows}
    return result


def _done_after(timeline: Timeline, name: str, t_first: float) -> float | None:
    """Seconds from the first progress until this flow had committed everything (None: never)."""
    total = timeline.totals.get(name, 0)
    done = next((t for t, consumed in timeline.samples if consumed[name] >= total), None)
    return None if done is None else round(max(0.0, done - t_first), 2)
