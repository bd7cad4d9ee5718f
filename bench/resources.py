"""CPU time and memory of every process the bench runs, sampled in the background.

Samples are kept as timelines per (role, pid), so any phase asks afterwards for the CPU
seconds and the peak memory inside exactly its measured window; a worker that starts or
stops inside a window counts from its birth or up to its last sample. Several processes
under one role (the chain's worker processes) are added up for CPU; memory is the peak
of any one of them (`processes` says how many there were).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

SAMPLE_INTERVAL_S = 0.5
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # time.monotonic()
    cpu_s: float  # user + system of the process itself
    rss_bytes: int


class ResourceMonitor:
    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._procs: dict[tuple[str, int], tuple[psutil.Process, float]] = {}  # -> (process, watch start)
        self._samples: dict[tuple[str, int], list[Sample]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-resources", daemon=True)

    def start(self) -> ResourceMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch(self, role: str, pid: int) -> None:
        """Sample `pid` under `role` (worker, broker, valkey, bench, passthrough) from now on."""
        with self._lock:
            self._procs[(role, pid)] = (psutil.Process(pid), time.monotonic())
            self._samples.setdefault((role, pid), [])
        self._sample_one((role, pid))

    def sample_now(self) -> None:
        for key in list(self._procs):
            self._sample_one(key)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_now()

    def _sample_one(self, key: tuple[str, int]) -> None:
        proc, _ = self._procs[key]
        try:
            with proc.oneshot():
                cpu = proc.cpu_times()
                sample = Sample(time.monotonic(), cpu.user + cpu.system, proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return
        with self._lock:
            self._samples[key].append(sample)

    def roles(self) -> list[str]:
        return sorted({role for role, _ in self._samples})

    def usage(self, t0: float, t1: float, events: int | None = None) -> dict[str, dict]:
        """Per role within [t0, t1]: CPU seconds summed over its processes (per 1,000 events when
        given), the peak RSS of any one of them, and how many processes were sampled."""
        out = {}
        with self._lock:
            items = [(key, list(samples), self._procs[key][1]) for key, samples in self._samples.items()]
        for (role, _pid), samples, born in items:
            inside = [s for s in samples if t0 <= s.t <= t1]
            if not inside:
                continue
            before = [s for s in samples if s.t < t0]
            # Alive before the window: count from the last sample before it; born inside: from zero.
            base = before[-1].cpu_s if before else (0.0 if born >= t0 else inside[0].cpu_s)
            entry = out.setdefault(role, {"cpu_s": 0.0, "peak_rss_mb": 0.0, "rss_end_mb": 0.0, "processes": 0})
            entry["processes"] += 1
            entry["cpu_s"] += max(0.0, inside[-1].cpu_s - base)
            entry["peak_rss_mb"] = max(entry["peak_rss_mb"], max(s.rss_bytes for s in inside) / MB)
            entry["rss_end_mb"] = max(entry["rss_end_mb"], inside[-1].rss_bytes / MB)
        for entry in out.values():
            entry["cpu_s"] = round(entry["cpu_s"], 3)
            entry["cpu_s_per_1000_events"] = round(1000 * entry["cpu_s"] / events, 4) if events else None
            entry["peak_rss_mb"] = round(entry["peak_rss_mb"], 1)
            entry["rss_end_mb"] = round(entry["rss_end_mb"], 1)
        return out

    def rss_at(self, role: str, t: float) -> float | None:
        """RSS (MB) of the role's processes at the last sample before t (summed over its live pids)."""
        total, found = 0, False
        with self._lock:
            for (r, _pid), samples in self._samples.items():
                before = [s for s in samples if s.t <= t] if r == role else []
                # Sampled shortly before t: the process was alive then (a stopped worker is not).
                if before and t - before[-1].t <= 3 * self.interval_s:
                    total, found = total + before[-1].rss_bytes, True
        return round(total / MB, 1) if found else None

    def peaks(self) -> dict[str, float]:
        """Peak RSS (MB) per role over the whole run."""
        with self._lock:
            out: dict[str, float] = {}
            for (role, _), samples in self._samples.items():
                if samples:
                    out[role] = round(max(out.get(role, 0.0), max(s.rss_bytes for s in samples) / MB), 1)
        return out
